//! Rebuilds the crate when a migration is added or changed: `embed_migrations!` reads `migrations/` at
//! compile time, and cargo does not otherwise know that a new migration folder concerns this crate (a
//! binary without it would run against a schema its tests expect to have it).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
