//! Property tests ("fuzzing") of every decoder of network input in this module: whatever bytes
//! a peer sends, decoding returns a value or a [`FrameError`], never panics, and never reads a
//! frame longer than the bound in force. Run longer with `PROPTEST_CASES=100000`.

use proptest::prelude::*;

use super::*;
use crate::transport::limits::UNAUTHENTICATED_FRAME_BYTES_MAX;
use crate::trust::{JoinProof, Role, TokenId};

/// Decodes `bytes` as every message type a peer can send or answer with; returns how many
/// decoded (the count only shows the decoders ran; what matters is that none panicked).
fn decode_as_everything(bytes: &[u8]) -> usize {
    let max = FRAME_BYTES_MAX;
    [
        decode::<StreamOpen>(bytes, max).is_ok(),
        decode::<Response>(bytes, max).is_ok(),
        decode::<AppendReply>(bytes, max).is_ok(),
        decode::<SnapshotFrame>(bytes, max).is_ok(),
        decode::<AppendEntriesRequest<TypeConfig>>(bytes, max).is_ok(),
        decode::<JoinRequest>(bytes, max).is_ok(),
        decode::<JoinGrant>(bytes, max).is_ok(),
    ]
    .into_iter()
    .filter(|ok| *ok)
    .count()
}

fn join_request() -> impl Strategy<Value = JoinRequest> {
    (
        any::<u64>(),
        any::<bool>(),
        "[a-z0-9.:-]{0,300}",
        prop::collection::vec(any::<u8>(), 0..200),
        any::<u8>(),
    )
        .prop_map(|(id, learner, addr, public_key_der, fill)| JoinRequest {
            token_id: TokenId(id),
            role: if learner { Role::Learner } else { Role::Voter },
            addr,
            public_key_der,
            proof: JoinProof([fill; 64]),
        })
}

proptest! {
    // Goal: random bytes never make a decoder panic.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        decode_as_everything(&bytes);
    }

    // Goal: a valid join request with bytes flipped, cut or extended decodes or fails cleanly,
    // and an intact one round-trips.
    #[test]
    fn damaged_join_requests_never_panic(
        request in join_request(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        tail in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let open = StreamOpen::Rpc(Request::Join(request.clone()));
        let mut bytes = encode(&open).unwrap().concat();
        let back: StreamOpen = decode(&bytes, UNAUTHENTICATED_FRAME_BYTES_MAX).unwrap();
        prop_assert!(matches!(back, StreamOpen::Rpc(Request::Join(ref got)) if *got == request));
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        bytes.extend_from_slice(&tail);
        decode_as_everything(&bytes);
    }

    // Goal: a frame whose length prefix is past the reader's bound is refused before any
    // buffer is made for it; one within the bound but cut short is `Truncated`, never a hang
    // or a panic.
    #[test]
    fn length_prefixes_are_bounded_before_allocating(len in any::<u32>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut input = len.to_be_bytes().to_vec();
        input.extend_from_slice(&body);
        let result = runtime.block_on(read_frame::<_, StreamOpen>(&mut input.as_slice(), UNAUTHENTICATED_FRAME_BYTES_MAX));
        if len > UNAUTHENTICATED_FRAME_BYTES_MAX {
            prop_assert!(matches!(result, Err(FrameError::TooLarge { .. })), "{result:?}");
        } else if (len as usize) > body.len() {
            prop_assert!(matches!(result, Err(FrameError::Truncated)), "{result:?}");
        }
    }
}
