//! The data dir (`PARAPET_DATA_DIR`): the embedded PostgreSQL keeps its cluster in it and development
//! its JWT secret, so `db` and `config` both create it, alike.

use anyhow::Context as _;
use std::path::Path;

/// Creates the data dir. It stays enterable by others (0755) because, when run as root, the embedded
/// PostgreSQL runs as the `postgres` user and must reach `<data dir>/pg`; secrets inside are 0600.
pub fn create_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o755);
    }
    b.create(data_dir).with_context(|| format!("cannot create the data dir {}", data_dir.display()))
}
