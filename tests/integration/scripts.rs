//! Shipped playbooks compile, the README's API table is the engine's own, and the demo runs.

use std::path::{Path, PathBuf};

use amsplay::config::AccountsFile;
use amsplay::script::{build_engine, help, runner, Host};

use crate::harness::amsplay;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rhai_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rhai_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rhai") {
            out.push(p);
        }
    }
}

fn engine() -> (tokio::runtime::Runtime, rhai::Engine) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let host = Host::new(
        rt.handle().clone(),
        amsplay::script::Stop::default(),
        AccountsFile::default(),
        "test",
    );
    let engine = build_engine(host);
    (rt, engine)
}

#[test]
fn every_shipped_playbook_compiles() {
    let mut files = Vec::new();
    rhai_files(&repo().join("scripts"), &mut files);
    rhai_files(&repo().join("examples"), &mut files);
    assert!(files.len() >= 3, "playbooks found: {files:?}");
    let (_rt, engine) = engine();
    for f in files {
        if let Err(e) = runner::check_file(&engine, &f) {
            panic!("{} does not compile:\n{e}", f.display());
        }
    }
}

#[test]
fn readme_api_table_is_generated_from_the_engine() {
    let (_rt, engine) = engine();
    let table = help::markdown(&engine);
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("<!-- api:start -->")
        .expect("README has <!-- api:start -->");
    let end = readme
        .find("<!-- api:end -->")
        .expect("README has <!-- api:end -->");
    let current = readme[start + "<!-- api:start -->".len()..end].trim();
    assert_eq!(
        current,
        table.trim(),
        "README API table is stale: regenerate it with `make api-docs`"
    );
}

#[test]
fn every_documented_function_has_an_example() {
    let (_rt, engine) = engine();
    for d in help::index(&engine).values() {
        assert!(
            d.doc.contains("Example:"),
            "{} has no example in its docs",
            d.name
        );
    }
}

#[test]
fn the_demo_playbook_runs_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    amsplay()
        .cwd(dir.path())
        .env("AMSPLAY_LOCAL_DIR", dir.path().join("local"))
        .args([
            "run".as_ref(),
            repo().join("scripts/replicate_storage.rhai").as_os_str(),
        ])
        .output()
        .success()
        .stdout_has("verified")
        .stdout_has("second run copied 0");
}

#[test]
fn the_walkthrough_steps_up_to_the_copy_run_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = amsplay()
        .cwd(dir.path())
        .env("AMSPLAY_LOCAL_DIR", dir.path().join("local"))
        .args([
            "run".as_ref(),
            repo().join("examples/replicate_asset.rhai").as_os_str(),
        ])
        .output()
        .success()
        .stdout_has("files in B: 1")
        .stdout_has("same path in both datacenters");
    let line = |prefix: &str| {
        out.stdout()
            .lines()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
            .unwrap_or_else(|| panic!("no {prefix:?} in {}", out.stdout()))
    };
    let id = line("Locator Id: ");
    let (a, b) = (
        line("Original Locator Path: "),
        line("Replicated Locator Path: "),
    );
    let guid = id.rsplit(':').next().unwrap();
    assert!(
        a.contains(&format!("/{guid}/")) && b.contains(&format!("/{guid}/")),
        "{a} {b}"
    );
    assert_ne!(a, b, "two datacenters, two hosts");
    let path = |u: &str| u.splitn(4, '/').nth(3).unwrap().to_string();
    assert_eq!(path(&a), path(&b));
}

#[test]
fn replicate_and_replicate_all_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("setup.rhai");
    std::fs::write(
        &script,
        r#"
        let a = account("dc-a"); let b = account("dc-b");
        for i in 0..2 {
            let f = `${temp_dir()}/clip${i}.mp4`;
            make_sample_file(f, 300000 + i);
            let x = a.upload(f);
            a.origin_locator(x, 30);
        }
        let x = a.assets()[0];
        let r1 = replicate(a, b, x, #{});
        let r2 = replicate(a, b, x, #{});
        print(`same id: ${r1.origin.id == r1.replica.id}`);
        print(`second copied: ${r2.copied} skipped: ${r2.skipped}`);
        print(`B files: ${r2.target.files.len()}`);
        print(`warmed: ${r2.warmed.error}`);
        // Durations as whole days or as hours()/minutes() give, wherever one is taken.
        a.sas_locator(x, "r", hours(12)).delete();
        a.access_policy("ints", 30, "r");
        a.access_policy("floats", minutes(90), "r");
        a.storage.container_sas(x.container, "rl", hours(1));
        try { a.sas_locator(x, "r", "soon"); } catch (e) { print(`duration: ${e.kind}`); }
        print("durations: ok");
    "#,
    )
    .unwrap();
    let run = |args: Vec<&std::ffi::OsStr>| {
        amsplay()
            .cwd(dir.path())
            .env("AMSPLAY_LOCAL_DIR", dir.path().join("local"))
            .args(args)
            .output()
            .success()
    };
    run(vec!["run".as_ref(), script.as_os_str()])
        .stdout_has("same id: true")
        .stdout_has("second copied: 0 skipped: 1")
        .stdout_has("B files: 1")
        .stdout_has("warmed: nothing to warm: the asset has no primary .ism file")
        .stdout_has("duration: invalid")
        .stdout_has("durations: ok");
    let all = repo().join("scripts/replicate_all.rhai");
    run(vec!["run".as_ref(), all.as_os_str()]).stdout_has("2 asset(s) replicated");
    run(vec!["run".as_ref(), all.as_os_str()])
        .stdout_has("copied 0, skipped 1")
        .stdout_has("2 asset(s) replicated");
}
