//! QUIC transport between cluster members.
