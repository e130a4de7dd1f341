//! Bounds on the terms and log indexes a peer may send, checked before openraft sees them.
//!
//! openraft adds to terms and indexes (a candidate's next term, the next entry's index) and
//! persists what it is sent: a vote with a term near `u64::MAX` would wrap the term counter
//! and be written to disk, after which no election could ever be won. A legitimate cluster
//! never comes near these bounds (2^48 terms is one election per millisecond for 8,900
//! years; 2^56 entries is a million commits a second for 2,280 years), so a message past them
//! is refused as hostile or corrupt.

use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::type_config::alias::{LogIdOf, VoteOf};

use crate::raft::types::{NodeId, TypeConfig};

/// Largest term accepted in any message.
pub const TERM_MAX: u64 = 1 << 48;

/// Largest log index accepted in any message.
pub const LOG_INDEX_MAX: u64 = 1 << 56;

/// A term or index past its bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    /// A term past [`TERM_MAX`].
    #[error("refused: term {0} is past the bound of {TERM_MAX}")]
    Term(u64),
    /// A log index past [`LOG_INDEX_MAX`].
    #[error("refused: log index {0} is past the bound of {LOG_INDEX_MAX}")]
    Index(u64),
}

/// The node a vote names (the candidate, or the leader it elected).
pub fn vote_node(vote: &VoteOf<TypeConfig>) -> NodeId {
    vote.leader_id().node_id
}

/// Checks a vote's term.
pub fn check_vote(vote: &VoteOf<TypeConfig>) -> Result<(), BoundsError> {
    check_term(vote.leader_id().term)
}

/// Checks a log id's term and index.
pub fn check_log_id(log_id: &LogIdOf<TypeConfig>) -> Result<(), BoundsError> {
    check_term(log_id.leader_id.term)?;
    if log_id.index > LOG_INDEX_MAX {
        return Err(BoundsError::Index(log_id.index));
    }
    Ok(())
}

/// Checks a vote request: the candidate's term and its last log id.
pub fn check_vote_request(rpc: &VoteRequest<TypeConfig>) -> Result<(), BoundsError> {
    check_vote(&rpc.vote)?;
    rpc.last_log_id.as_ref().map_or(Ok(()), check_log_id)
}

/// Checks an append: the leader's term, the previous and committed log ids, every entry's id.
pub fn check_append(rpc: &AppendEntriesRequest<TypeConfig>) -> Result<(), BoundsError> {
    check_vote(&rpc.vote)?;
    for log_id in rpc.prev_log_id.iter().chain(rpc.leader_commit.iter()) {
        check_log_id(log_id)?;
    }
    rpc.entries.iter().try_for_each(|entry| check_log_id(&entry.log_id))
}

fn check_term(term: u64) -> Result<(), BoundsError> {
    if term > TERM_MAX {
        Err(BoundsError::Term(term))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::vote::leader_id_adv::LeaderId;

    use super::*;

    fn vote(term: u64, node: NodeId) -> VoteOf<TypeConfig> {
        VoteOf::<TypeConfig>::new(term, node)
    }

    fn log_id(term: u64, index: u64) -> LogIdOf<TypeConfig> {
        LogIdOf::<TypeConfig>::new(LeaderId { term, node_id: 1 }, index)
    }

    // Goal: a term near u64::MAX (the overflow attack) is refused; ordinary terms pass.
    #[test]
    fn terms_past_the_bound_are_refused() {
        assert_eq!(check_vote(&vote(7, 2)), Ok(()));
        assert_eq!(check_vote(&vote(TERM_MAX, 2)), Ok(()));
        assert_eq!(check_vote(&vote(u64::MAX, 2)), Err(BoundsError::Term(u64::MAX)));
        let request = VoteRequest::new(vote(3, 2), Some(log_id(u64::MAX - 1, 4)));
        assert_eq!(check_vote_request(&request), Err(BoundsError::Term(u64::MAX - 1)));
        assert_eq!(vote_node(&vote(3, 2)), 2);
    }

    // Goal: an append is refused if any id in it (previous, committed, entries) is out of bounds.
    #[test]
    fn appends_with_huge_indexes_are_refused() {
        let ok = AppendEntriesRequest {
            vote: vote(3, 1),
            prev_log_id: Some(log_id(3, 9)),
            entries: vec![],
            leader_commit: Some(log_id(3, 9)),
        };
        assert_eq!(check_append(&ok), Ok(()));
        let bad_commit =
            AppendEntriesRequest { leader_commit: Some(log_id(3, u64::MAX)), ..ok.clone() };
        assert_eq!(check_append(&bad_commit), Err(BoundsError::Index(u64::MAX)));
        let bad_prev = AppendEntriesRequest { prev_log_id: Some(log_id(u64::MAX, 1)), ..ok };
        assert_eq!(check_append(&bad_prev), Err(BoundsError::Term(u64::MAX)));
    }
}
