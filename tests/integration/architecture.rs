//! The layers of docs/architecture.md, held against the code: a module may
//! import only modules of lower layers (and its own), so dependencies
//! point one way and no two modules import each other.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bottom to top. Modules in one row may not import each other.
const LAYERS: &[&[&str]] = &[
    &["sync", "secret", "background"],
    &["clock", "liveness", "domain"],
    &["message"],
    &["render"],
    &["outbox"],
    &["plan"],
    &["banner"],
    &["preview"],
    &["publish"],
    &["service"],
    &["channels"],
    &["telemetry", "config"],
    &["dispatch"],
    &["intake"],
    &["health"],
    &["http", "lifecycle", "logging"],
    &["app"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The modules of `crate::name` paths in the code before its tests.
fn imported_modules(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut modules = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() {
            modules.insert(name);
        }
    }
    modules
}

#[test]
fn every_import_points_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.components().next().unwrap().as_os_str();
        let module = top.to_str().unwrap().trim_end_matches(".rs");
        if matches!(module, "bin" | "lib" | "main") {
            continue;
        }
        let own =
            layer_of(module).unwrap_or_else(|| panic!("src/{module} is in no layer of this test"));
        let text = std::fs::read_to_string(&file).unwrap();
        for imported in imported_modules(&text) {
            if imported == module {
                continue;
            }
            let layer = layer_of(&imported)
                .unwrap_or_else(|| panic!("{}: crate::{imported} is in no layer", file.display()));
            if layer >= own {
                upward.push(format!(
                    "src/{}: {module} -> {imported}",
                    relative.display()
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not point down:\n{}",
        upward.join("\n")
    );
}

#[test]
fn every_module_of_the_crate_is_in_a_layer() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("pub mod "))
        .map(|name| name.trim_end_matches(';'))
        .collect();
    assert!(declared.len() > 10, "{declared:?}");
    for module in declared {
        assert!(layer_of(module).is_some(), "{module} is in no layer");
    }
}
