//! Settings from environment variables and flags.
