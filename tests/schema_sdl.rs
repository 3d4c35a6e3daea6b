//! `schema.graphql` at the repository root is exactly what `parapet schema` prints.

#[test]
fn schema_graphql_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let current = parapet::graphql::sdl();
    assert!(
        on_disk == current,
        "schema.graphql differs from the schema the code builds; run `cargo run -- schema > schema.graphql`"
    );
}
