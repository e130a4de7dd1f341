//! What an archive holds, read from a listing of its object names alone, and the decisions
//! made from it: where the archive ends (where a new leader resumes), which objects a restore
//! needs, which retention may delete, and which stretches of history cannot be restored.
//!
//! Objects are immutable and a committed entry is the same whoever archived it, so overlapping
//! segments (a new leader re-uploading what an old one also did) are harmless: a restore
//! follows the chain of entries and takes, at each point, the segment that reaches furthest.

use super::format::{parse_name, Named};
use crate::raft::types::LogIndex;

/// A base image in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseEntry {
    /// Object name.
    pub name: String,
    /// The image's log index.
    pub index: LogIndex,
    /// Commit time of its newest write (ms).
    pub at_ms: u64,
}

/// A segment in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentEntry {
    /// Object name.
    pub name: String,
    /// First entry.
    pub first: LogIndex,
    /// Last entry.
    pub last: LogIndex,
    /// Commit time of its newest write (ms; 0: none in it).
    pub at_ms: u64,
}

/// An archive's contents, sorted by index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Base images, oldest first.
    pub bases: Vec<BaseEntry>,
    /// Segments, by first index then last.
    pub segments: Vec<SegmentEntry>,
}

/// What a restore should end at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreTarget {
    /// The last archived transaction.
    Latest,
    /// The state as of this log index.
    Index(LogIndex),
    /// The last transaction committed at or before this time (ms since the Unix epoch).
    Time(u64),
}

/// The objects a restore reads, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestorePlan {
    /// The base image to start from.
    pub base: BaseEntry,
    /// The segments to apply after it, in chain order (each starts at or before the entry
    /// after the previous one's last).
    pub segments: Vec<SegmentEntry>,
    /// Apply entries up to this index at most (the whole chain for `Latest` and `Time`).
    pub last: LogIndex,
}

/// A stretch of history no restore can reach: entries between two points were never archived
/// (the local log dropped them before the store took them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The last index restorable before the gap.
    pub after_index: LogIndex,
    /// Its commit time (ms).
    pub after_ms: u64,
    /// The first index restorable again (a base image).
    pub resumes_index: LogIndex,
    /// That base's time (ms).
    pub resumes_ms: u64,
}

impl Catalog {
    /// Builds a catalog from object names (others are ignored).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Catalog {
        let mut catalog = Catalog::default();
        for name in names {
            match parse_name(name) {
                Some(Named::Base { index, at_ms }) => {
                    catalog.bases.push(BaseEntry { name: name.to_string(), index, at_ms })
                }
                Some(Named::Segment { first, last, at_ms }) => catalog
                    .segments
                    .push(SegmentEntry { name: name.to_string(), first, last, at_ms }),
                None => {}
            }
        }
        catalog.bases.sort_by_key(|b| (b.index, b.at_ms));
        catalog.segments.sort_by_key(|s| (s.first, s.last));
        catalog
    }

    /// The segments that continue the chain from `after` (index of the last entry held), in
    /// order, as far as the chain goes; and where it ends.
    fn chain_from(&self, mut after: LogIndex) -> (Vec<SegmentEntry>, LogIndex) {
        let mut chain = Vec::new();
        loop {
            let next = self
                .segments
                .iter()
                .filter(|s| s.first <= after + 1 && s.last > after)
                .max_by_key(|s| s.last);
            match next {
                Some(segment) => {
                    after = segment.last;
                    chain.push(segment.clone());
                }
                None => return (chain, after),
            }
        }
    }

    /// The index the archive holds every entry up to, from its newest base on: where the
    /// archiver resumes (None: no base yet, so it must upload one first).
    pub fn archived_index(&self) -> Option<LogIndex> {
        let base = self.bases.last()?;
        Some(self.chain_from(base.index).1)
    }

    /// Commit time (ms) of the newest archived write, as the names tell it.
    pub fn archived_at_ms(&self) -> Option<u64> {
        let base = self.bases.last()?;
        let (chain, _) = self.chain_from(base.index);
        chain.iter().map(|s| s.at_ms).chain([base.at_ms]).max()
    }

    /// The oldest and newest restorable commit times (ms).
    pub fn window_ms(&self) -> Option<(u64, u64)> {
        Some((self.bases.first()?.at_ms, self.archived_at_ms()?))
    }

    /// The stretches of history that cannot be restored: where a base's chain stops short of
    /// the next base.
    pub fn gaps(&self) -> Vec<Gap> {
        let mut gaps = Vec::new();
        for pair in self.bases.windows(2) {
            let (chain, end) = self.chain_from(pair[0].index);
            if end < pair[1].index {
                let after_ms = chain.iter().map(|s| s.at_ms).chain([pair[0].at_ms]).max();
                gaps.push(Gap {
                    after_index: end,
                    after_ms: after_ms.unwrap_or(0),
                    resumes_index: pair[1].index,
                    resumes_ms: pair[1].at_ms,
                });
            }
        }
        gaps
    }

    /// The objects a restore to `target` reads, or why it cannot be done.
    pub fn plan(&self, target: RestoreTarget) -> Result<RestorePlan, String> {
        if self.bases.is_empty() {
            return Err("the archive holds no base image (is the URL right, and has the leader uploaded yet?)".into());
        }
        let base = match target {
            RestoreTarget::Latest => self.bases.last(),
            RestoreTarget::Index(index) => self.bases.iter().rev().find(|b| b.index <= index),
            RestoreTarget::Time(ms) => self.bases.iter().rev().find(|b| b.at_ms <= ms),
        };
        let Some(base) = base.cloned() else {
            let oldest = &self.bases[0];
            return Err(format!(
                "the archive starts later: its oldest base image is index {} at {}",
                oldest.index,
                crate::clock::rfc3339_ms(oldest.at_ms)
            ));
        };
        let (segments, end) = self.chain_from(base.index);
        let last = match target {
            RestoreTarget::Latest | RestoreTarget::Time(_) => end,
            RestoreTarget::Index(index) if index <= end => index,
            RestoreTarget::Index(index) => {
                return Err(match self.bases.iter().find(|b| b.index > index) {
                    Some(next) => format!(
                        "index {index} falls in a gap of the archive: entries {} to {} were never archived",
                        end + 1,
                        next.index
                    ),
                    None => format!("index {index} is past the archive's end ({end})"),
                });
            }
        };
        if let RestoreTarget::Time(ms) = target {
            // The chain stops at a gap before the next base: a time inside the gap may follow
            // writes the archive never saw.
            let next_base_after_ms = self.bases.iter().find(|b| b.index > end).map(|b| b.at_ms);
            if let Some(next_ms) = next_base_after_ms {
                if ms < next_ms && segments.iter().all(|s| s.at_ms <= ms) {
                    return Err(format!(
                        "{} falls in a gap of the archive: entries after index {end} up to {} were never archived",
                        crate::clock::rfc3339_ms(ms),
                        crate::clock::rfc3339_ms(next_ms)
                    ));
                }
            }
        }
        let segments = segments.into_iter().filter(|s| s.first <= last).collect();
        Ok(RestorePlan { base, segments, last })
    }

    /// The objects retention may delete so that `keep_bases` base images remain, and every
    /// base kept stays restorable with the segments after it. `keep_from_ms`: also keep the base
    /// needed to restore any moment since then.
    pub fn expired(&self, keep_bases: usize, keep_from_ms: Option<u64>) -> Vec<String> {
        let keep_bases = keep_bases.max(1);
        let mut first_kept = self.bases.len().saturating_sub(keep_bases);
        if let Some(from_ms) = keep_from_ms {
            // The newest base at or before `from_ms` is needed to reach that moment.
            let needed = self.bases.iter().rposition(|b| b.at_ms <= from_ms).unwrap_or(0);
            first_kept = first_kept.min(needed);
        }
        let Some(oldest_kept) = self.bases.get(first_kept) else { return Vec::new() };
        let mut names: Vec<String> =
            self.bases[..first_kept].iter().map(|b| b.name.clone()).collect();
        names.extend(
            self.segments.iter().filter(|s| s.last <= oldest_kept.index).map(|s| s.name.clone()),
        );
        names
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{base_name, segment_name};
    use super::*;

    fn catalog(bases: &[(u64, u64)], segments: &[(u64, u64, u64)]) -> Catalog {
        let names: Vec<String> = bases
            .iter()
            .map(|(i, t)| base_name(*i, *t))
            .chain(segments.iter().map(|(f, l, t)| segment_name(*f, *l, *t)))
            .collect();
        Catalog::from_names(names.iter().map(String::as_str))
    }

    // Goal: the chain follows overlapping segments (a new leader re-uploading) to the end.
    #[test]
    fn overlaps_do_not_break_the_chain() {
        let c =
            catalog(&[(10, 100)], &[(11, 20, 200), (15, 30, 300), (21, 25, 250), (31, 31, 310)]);
        assert_eq!(c.archived_index(), Some(31));
        assert_eq!(c.archived_at_ms(), Some(310));
        let plan = c.plan(RestoreTarget::Latest).unwrap();
        assert_eq!(
            plan.segments.iter().map(|s| (s.first, s.last)).collect::<Vec<_>>(),
            [(11, 20), (15, 30), (31, 31)]
        );
        assert_eq!(plan.last, 31);
    }

    // Goal: a restore picks the newest base at or before its target.
    #[test]
    fn targets_pick_their_base() {
        let c = catalog(&[(10, 100), (40, 400)], &[(11, 40, 390), (41, 50, 500)]);
        assert_eq!(c.plan(RestoreTarget::Index(30)).unwrap().base.index, 10);
        assert_eq!(c.plan(RestoreTarget::Index(30)).unwrap().last, 30);
        assert_eq!(c.plan(RestoreTarget::Index(45)).unwrap().base.index, 40);
        assert_eq!(c.plan(RestoreTarget::Time(399)).unwrap().base.index, 10);
        assert_eq!(c.plan(RestoreTarget::Time(450)).unwrap().base.index, 40);
        assert!(c.plan(RestoreTarget::Time(99)).unwrap_err().contains("starts later"));
        assert!(c.plan(RestoreTarget::Index(51)).unwrap_err().contains("past the archive's end"));
        assert!(Catalog::default().plan(RestoreTarget::Latest).unwrap_err().contains("no base"));
    }

    // Goal: a gap (entries never archived) is reported, and restores into it are refused
    // rather than silently answered with an older state.
    #[test]
    fn gaps_are_found_and_refused() {
        let c = catalog(&[(10, 100), (60, 600)], &[(11, 30, 300), (61, 70, 700)]);
        assert_eq!(
            c.gaps(),
            [Gap { after_index: 30, after_ms: 300, resumes_index: 60, resumes_ms: 600 }]
        );
        assert!(c.plan(RestoreTarget::Index(45)).unwrap_err().contains("gap"));
        assert!(c.plan(RestoreTarget::Time(450)).unwrap_err().contains("gap"));
        assert_eq!(c.plan(RestoreTarget::Index(25)).unwrap().last, 25);
        assert_eq!(c.plan(RestoreTarget::Time(650)).unwrap().base.index, 60);
        assert_eq!(c.archived_index(), Some(70));
    }

    // Goal: retention deletes old bases and the segments only they need, never what a kept
    // base's chain needs.
    #[test]
    fn retention_keeps_what_kept_bases_need() {
        let c = catalog(
            &[(10, 100), (40, 400), (80, 800)],
            &[(11, 40, 390), (41, 80, 790), (81, 90, 900)],
        );
        let mut expired = c.expired(2, None);
        expired.sort();
        assert_eq!(expired, [base_name(10, 100), segment_name(11, 40, 390)]);
        assert!(c.expired(3, None).is_empty());
        assert_eq!(c.expired(1, Some(500)).len(), 2, "a time window keeps the base before it");
        assert_eq!(c.expired(1, None).len(), 4);
    }
}
