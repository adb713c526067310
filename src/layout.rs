//! The layout as documented is the layout as built: every module is in `lib.rs`'s list and
//! in the README's table (every file of a folder by name), and the dependency rules hold.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Top-level modules: `src/x.rs` and `src/x/` (not `main.rs`, `lib.rs` or this file).
fn modules() -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = std::fs::read_dir(root().join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            if p.is_dir() {
                Some((name, true))
            } else {
                let stem = name.strip_suffix(".rs")?.to_string();
                (!["main", "lib", "layout"].contains(&stem.as_str())).then_some((stem, false))
            }
        })
        .collect();
    out.sort();
    out
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str().map(String::from))
        .filter(|n| n.ends_with(".rs"))
        .collect();
    out.sort();
    out
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

#[test]
fn lib_rs_lists_every_module() {
    let lib = read("src/lib.rs");
    let doc: String = lib
        .lines()
        .filter(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    for (m, _) in modules() {
        assert!(
            doc.contains(&format!("`{m}`")),
            "src/lib.rs's layout does not mention `{m}`: add a line saying what it is"
        );
        assert!(
            lib.contains(&format!("mod {m};")),
            "src/{m} is not a module of lib.rs"
        );
    }
}

#[test]
fn the_readme_table_lists_every_module_and_file() {
    let readme = read("README.md");
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("Layout ("))
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `"))
        .collect();
    assert!(
        !table.is_empty(),
        "README has a layout table after 'Layout ('"
    );
    for (m, dir) in modules() {
        let path = if dir {
            format!("`src/{m}/`")
        } else {
            format!("`src/{m}.rs`")
        };
        let row = table
            .iter()
            .find(|r| r.contains(&path))
            .unwrap_or_else(|| panic!("README's layout table has no row for {path}"));
        if dir {
            for f in files_in(&root().join("src").join(&m)) {
                assert!(
                    row.contains(&format!("`{f}`")),
                    "README's row for {path} does not name `{f}`"
                );
            }
        }
    }
}

/// Every `.rs` file under `src/{dir}` (or the file `src/{dir}.rs`), with its path.
fn sources(module: &str) -> Vec<(PathBuf, String)> {
    let file = root().join("src").join(format!("{module}.rs"));
    if file.exists() {
        return vec![(file.clone(), std::fs::read_to_string(&file).unwrap())];
    }
    let dir = root().join("src").join(module);
    files_in(&dir)
        .into_iter()
        .map(|f| {
            let p = dir.join(f);
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

#[test]
fn dependencies_run_one_way() {
    // config ← storage ← ams: the lower never reaches up.
    for (module, forbidden) in [
        (
            "config",
            &["crate::storage", "crate::ams", "crate::script"][..],
        ),
        (
            "retry",
            &["crate::storage", "crate::ams", "crate::config"][..],
        ),
        (
            "storage",
            &["crate::ams", "crate::script", "crate::emulator"][..],
        ),
        (
            "ams",
            &["crate::script", "crate::emulator", "crate::storage"][..],
        ),
    ] {
        for (path, text) in sources(module) {
            for f in forbidden {
                assert!(
                    !text.contains(f),
                    "{} uses {f}: {module} must not depend on it",
                    path.display()
                );
            }
        }
    }
    // The emulator's entity modules know nothing of the router that calls them.
    for (path, text) in sources("emulator") {
        if path.ends_with("routes.rs") || path.ends_with("mod.rs") {
            continue;
        }
        assert!(
            !text.contains("routes::"),
            "{} uses routes.rs: what entity modules share belongs in odata.rs",
            path.display()
        );
    }
}
