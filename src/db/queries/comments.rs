//! Comments on incidents and alerts (append-only).
