//! Paths as users write them.
//!
//! `Path::parent` of a bare file name (`s.yaml`) is the empty path, not `.`:
//! joining onto it works, but checking it (`is_dir`, `exists`) fails and
//! naming it in a message prints nothing. Every folder taken from a
//! user-given path goes through [`folder_of`], so a bare name means the
//! current folder everywhere.

use std::path::Path;

/// The folder that holds `path`: its parent, or `.` when it has none or the
/// parent is empty.
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_lives_in_the_current_folder() {
        assert_eq!(folder_of(Path::new("s.yaml")), Path::new("."));
        assert_eq!(folder_of(Path::new("./s.yaml")), Path::new("."));
        assert_eq!(folder_of(Path::new("studies/s.yaml")), Path::new("studies"));
        assert_eq!(folder_of(Path::new("/s.yaml")), Path::new("/"));
        assert_eq!(folder_of(Path::new("")), Path::new("."));
    }
}
