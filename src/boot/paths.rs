//! Path rules for container paths (mount destinations, device paths).

use std::path::{Path, PathBuf};

/// Cleans an absolute container path the way Go's `filepath.Clean` does (`.`, `..` and `//`
/// folded), except that climbing above `/` is an error instead of being silently dropped.
pub fn clean_absolute(path: &str) -> Result<PathBuf, &'static str> {
    if !path.starts_with('/') {
        return Err("not an absolute path");
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or("climbs above /")?;
            }
            name => parts.push(name),
        }
    }
    Ok(PathBuf::from(format!("/{}", parts.join("/"))))
}

/// Whether `ancestor` is a proper ancestor of `path`, component by component (`/foo` is one of
/// `/foo/qux` but not of `/foo/qux-quz`).
pub fn is_proper_ancestor(ancestor: &Path, path: &Path) -> bool {
    ancestor != path && path.starts_with(ancestor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_filepath_clean() {
        let cases = [
            ("/", "/"),
            ("/foo/", "/foo"),
            ("//foo//bar", "/foo/bar"),
            ("/foo/./bar/.", "/foo/bar"),
            ("/foo/baz/../bar", "/foo/bar"),
            ("/foo/..", "/"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                clean_absolute(input),
                Ok(PathBuf::from(expected)),
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_relative_and_climbing_paths() {
        assert_eq!(clean_absolute("foo/bar"), Err("not an absolute path"));
        assert_eq!(clean_absolute(""), Err("not an absolute path"));
        assert_eq!(clean_absolute("/.."), Err("climbs above /"));
        assert_eq!(clean_absolute("/foo/../../etc"), Err("climbs above /"));
    }

    #[test]
    fn ancestry_is_by_component() {
        assert!(is_proper_ancestor(Path::new("/foo"), Path::new("/foo/qux")));
        assert!(is_proper_ancestor(Path::new("/"), Path::new("/foo")));
        assert!(!is_proper_ancestor(
            Path::new("/foo/qux"),
            Path::new("/foo/qux-quz")
        ));
        assert!(!is_proper_ancestor(Path::new("/foo"), Path::new("/foo")));
    }
}
