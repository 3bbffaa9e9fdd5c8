//! The agent's folders follow the data flow and imports only point down it: every `crate::`
//! path in agent/src names a folder of a lower stage than the file's own (or its own folder).
//! The order is declared once, here, and the README's stage table must list the same folders
//! in the same order, so the docs cannot drift from the tree.
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

/// The stages, bottom first. Folders on one line share a stage and may not import each other.
const STAGES: &[&[&str]] = &[
    &["model"],
    &["metrics", "policy"],
    &["kernel", "serve"],
    &["attribution"],
    &["assemble"],
    &["detect"],
    &["output", "evidence"],
    &["receive"],
    &["pipeline"],
    &["daemon"],
    &["chaos"],
    &["cli"],
    // The test and benchmark harness (`--features testkit`): `main` hands it `seam workload`,
    // and nothing of the shipped agent imports it.
    &["testkit"],
];

fn stage_of(folder: &str) -> Option<usize> {
    STAGES.iter().position(|stage| stage.contains(&folder))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read agent/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without `//` comments (doc links may name any module).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segments after `crate::`, expanding `crate::{a::x, b}` groups.
fn crate_roots(code: &str) -> BTreeSet<String> {
    let mut roots = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        let preceded = start
            .checked_sub(1)
            .map(|i| bytes[i])
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$');
        if preceded {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split at depth-0 commas.
            let mut depth = 0usize;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        roots.insert(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            roots.insert(first_segment(&item));
        } else {
            roots.insert(first_segment(rest));
        }
    }
    roots.remove("");
    roots
}

fn first_segment(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn imports_only_point_down_the_data_flow() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).expect("under src");
        let folder = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs"))
            .expect("a file name");
        if matches!(folder, "lib" | "main") {
            continue;
        }
        let Some(own) = stage_of(folder) else {
            wrong.push(format!(
                "{}: folder `{folder}` has no stage in STAGES (agent/tests/layering.rs)",
                rel.display()
            ));
            continue;
        };
        let text = fs::read_to_string(file).expect("read source");
        for target in crate_roots(&code(&text)) {
            if target == folder {
                continue;
            }
            match stage_of(&target) {
                Some(stage) if stage < own => {}
                Some(_) => wrong.push(format!(
                    "{}: `{folder}` imports `crate::{target}`, which is not below it",
                    rel.display()
                )),
                None => wrong.push(format!(
                    "{}: `crate::{target}` is not a folder with a stage",
                    rel.display()
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the data flow (stages in agent/tests/layering.rs):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_folder_has_a_stage_and_every_stage_a_folder() {
    let mut folders: BTreeSet<String> = BTreeSet::new();
    for entry in fs::read_dir(src()).expect("read agent/src") {
        let entry = entry.expect("dir entry");
        if entry.path().is_dir() {
            folders.insert(entry.file_name().to_string_lossy().into_owned());
        } else {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                matches!(name.as_str(), "lib.rs" | "main.rs"),
                "agent/src/{name}: files belong in a stage's folder"
            );
        }
    }
    let staged: BTreeSet<String> = STAGES
        .iter()
        .flat_map(|s| s.iter().map(|f| (*f).to_owned()))
        .collect();
    assert_eq!(folders, staged, "agent/src folders vs STAGES");
}

#[test]
fn the_readme_stage_table_lists_the_folders_in_order() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = fs::read_to_string(&readme).expect("read README.md");
    // Rows of the stage table: `| <stage> | `folder/`, `folder/` | ... |`.
    let listed: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("/`"))
        .filter_map(|l| {
            let cell = l.split('|').nth(2)?;
            let folders: Vec<String> = cell
                .split(',')
                .filter_map(|f| {
                    let f = f.trim().trim_matches('`');
                    f.strip_suffix('/').map(str::to_owned)
                })
                .collect();
            (!folders.is_empty()).then_some(folders)
        })
        .collect();
    let expected: Vec<Vec<String>> = STAGES
        .iter()
        .map(|s| s.iter().map(|f| (*f).to_owned()).collect())
        .collect();
    assert_eq!(
        listed, expected,
        "README.md's stage table (rows `| stage | `folder/` | ...`) must match \
         agent/tests/layering.rs STAGES"
    );
}

#[test]
fn the_parser_sees_grouped_and_plain_paths() {
    let roots = crate_roots(&code(
        "use crate::{a::x, b::{c, d}};\nfn f() { crate::e::g(); } // crate::z\n$crate::q",
    ));
    let want: BTreeSet<String> = ["a", "b", "e"].iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(roots, want);
}
