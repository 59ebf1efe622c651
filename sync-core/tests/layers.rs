//! The layers of sync-core, kept by the build: every `.rs` file under `src/` is parsed and every
//! path it names (in `use` items and in code) is checked against the rules below. A forbidden
//! import fails `cargo test` with the file, the line and the rule it breaks.
//!
//! - The **domain** (model, documents, workflow, authorization, rules, geometry, tracks,
//!   photos as bytes, protocol, limits, statistics) is pure: it imports nothing from the phone's
//!   side or the server's, and touches no files, network, threads, shared locks or databases.
//! - The **device** side (`client`: the phone's sync engine and photo files; `store`: its local
//!   database) and the **hub** (the server's sync engine, delivery cache and store traits) each
//!   build on the domain and never on each other: the phone and the server share only the domain.
//!
//! Paths inside macro invocations are not parsed; everything else is, test modules included.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Domain,
    Device,
    Hub,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Domain => "the domain",
            Layer::Device => "the device side",
            Layer::Hub => "the hub",
        })
    }
}

/// Every top-level module of sync-core and its layer. A new module must be placed here.
const LAYERS: &[(&str, Layer)] = &[
    ("api_types", Layer::Domain),
    ("authz", Layer::Domain),
    ("doc", Layer::Domain),
    ("evict", Layer::Domain),
    ("geo", Layer::Domain),
    ("import", Layer::Domain),
    ("limits", Layer::Domain),
    ("model", Layer::Domain),
    ("overview", Layer::Domain),
    ("photo", Layer::Domain),
    ("protocol", Layer::Domain),
    ("public", Layer::Domain),
    ("rules", Layer::Domain),
    ("stats", Layer::Domain),
    ("track", Layer::Domain),
    ("workflow", Layer::Domain),
    ("client", Layer::Device),
    ("store", Layer::Device),
    ("hub", Layer::Hub),
];

/// What the domain may not touch: files, network, threads, processes, shared mutable state
/// (caches and rate maps belong to the hub or the device) and databases.
const DOMAIN_FORBIDS: &[(&str, &str)] = &[
    ("std::fs", "files"),
    ("std::net", "the network"),
    ("std::thread", "threads"),
    ("std::process", "processes"),
    ("std::sync::Mutex", "shared mutable state"),
    ("std::sync::RwLock", "shared mutable state"),
    ("sled", "a database"),
    ("tempfile", "files"),
    ("lru", "a cache"),
];

fn layer_of(module: &str) -> Option<Layer> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// One forbidden path, where it was found and why it is forbidden.
#[derive(Debug)]
struct Breach {
    file: PathBuf,
    line: usize,
    path: String,
    rule: String,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: `{}` — {}",
            self.file.display(),
            self.line,
            self.path,
            self.rule
        )
    }
}

/// The rule a path from module `from` (its layer `layer`) to `path` breaks, if any. `path` is
/// absolute: `crate::…` for the crate's own modules, a crate name otherwise.
fn rule_broken(layer: Layer, from: &str, path: &[String]) -> Option<String> {
    if path.first().map(String::as_str) == Some("crate") {
        let target = path.get(1)?;
        if target == from {
            return None;
        }
        let target_layer = layer_of(target)?;
        return match (layer, target_layer) {
            (Layer::Domain, Layer::Device | Layer::Hub) => Some(format!(
                "{layer} ({from}) must not use {target_layer} ({target}): the domain depends \
                 on nothing but itself"
            )),
            (Layer::Device, Layer::Hub) | (Layer::Hub, Layer::Device) => Some(format!(
                "{layer} ({from}) must not use {target_layer} ({target}): the phone's side and \
                 the server's share only the domain (move what both need into a domain module)"
            )),
            _ => None,
        };
    }
    if layer == Layer::Domain {
        for (forbidden, what) in DOMAIN_FORBIDS {
            let forbidden: Vec<&str> = forbidden.split("::").collect();
            if path.len() >= forbidden.len() && path.iter().zip(&forbidden).all(|(a, b)| a == b) {
                return Some(format!(
                    "the domain ({from}) must not touch {what}: that belongs to the device side \
                     (client, store) or the hub"
                ));
            }
        }
    }
    None
}

/// Walks one file, resolving `self::` and `super::` against the module the code sits in.
struct Walker<'a> {
    file: &'a Path,
    layer: Layer,
    top: String,
    /// The module path of the code being walked, starting with `crate`.
    module: Vec<String>,
    breaches: Vec<Breach>,
}

impl Walker<'_> {
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?;
        let mut base = match first.as_str() {
            "crate" => return Some(segments.to_vec()),
            "sync_core" => {
                let mut path = vec!["crate".to_string()];
                path.extend_from_slice(&segments[1..]);
                return Some(path);
            }
            "self" => self.module.clone(),
            "super" => {
                let mut base = self.module.clone();
                base.pop();
                base
            }
            _ => return Some(segments.to_vec()),
        };
        for segment in &segments[1..] {
            if segment == "super" {
                base.pop();
            } else {
                base.push(segment.clone());
            }
        }
        Some(base)
    }

    fn check(&mut self, segments: &[String], line: usize) {
        let Some(path) = self.absolute(segments) else {
            return;
        };
        if let Some(rule) = rule_broken(self.layer, &self.top, &path) {
            self.breaches.push(Breach {
                file: self.file.to_path_buf(),
                line,
                path: path.join("::"),
                rule,
            });
        }
    }

    /// Every full path a `use` tree names.
    fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                Self::use_paths(&p.tree, prefix, out);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                if n.ident != "self" {
                    path.push(n.ident.to_string());
                }
                out.push(path);
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                path.push(r.ident.to_string());
                out.push(path);
            }
            syn::UseTree::Glob(_) => out.push(prefix.clone()),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    Self::use_paths(tree, prefix, out);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.module.push(item.ident.to_string());
        syn::visit::visit_item_mod(self, item);
        self.module.pop();
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        Self::use_paths(&item.tree, &mut Vec::new(), &mut paths);
        let line = item.use_token.span.start().line;
        for path in paths {
            self.check(&path, line);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            let line = path
                .segments
                .first()
                .map_or(0, |s| s.ident.span().start().line);
            self.check(&segments, line);
        }
        syn::visit::visit_path(self, path);
    }
}

/// The module path of a file under `src/`: `src/hub/limits.rs` is `crate::hub::limits`,
/// `src/hub/mod.rs` is `crate::hub`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("file under src");
    let mut module = vec!["crate".to_string()];
    for part in relative.with_extension("").iter() {
        let part = part.to_string_lossy().to_string();
        if part != "mod" && part != "lib" {
            module.push(part);
        }
    }
    module
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The breaches of every file under `src`, and the top-level modules no layer names.
fn breaches(src: &Path) -> (Vec<Breach>, Vec<String>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = Vec::new();
    let mut unplaced = BTreeMap::new();
    for file in files {
        let module = module_of(src, &file);
        let Some(top) = module.get(1).cloned() else {
            continue; // lib.rs: only declares the modules
        };
        let Some(layer) = layer_of(&top) else {
            unplaced.insert(top, ());
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        let syntax = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("{}: does not parse: {e}", file.display()));
        let shown = file.strip_prefix(src.parent().unwrap()).unwrap_or(&file);
        let mut walker = Walker {
            file: shown,
            layer,
            top,
            module,
            breaches: Vec::new(),
        };
        walker.visit_file(&syntax);
        found.extend(walker.breaches);
    }
    (found, unplaced.into_keys().collect())
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_import_keeps_the_layers() {
    let (found, unplaced) = breaches(&src());
    assert!(
        unplaced.is_empty(),
        "modules in no layer (place them in tests/layers.rs LAYERS): {unplaced:?}"
    );
    let report: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(
        report.is_empty(),
        "{} import(s) break sync-core's layers:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn every_module_declared_in_lib_has_a_layer() {
    let lib = syn::parse_file(&std::fs::read_to_string(src().join("lib.rs")).unwrap()).unwrap();
    let declared: Vec<String> = lib
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) => Some(m.ident.to_string()),
            _ => None,
        })
        .collect();
    assert!(!declared.is_empty());
    for module in declared {
        assert!(
            layer_of(&module).is_some(),
            "module `{module}` is in no layer: place it in tests/layers.rs LAYERS"
        );
    }
}

/// The checker itself catches each kind of breach, so a passing run means something.
#[test]
fn the_checker_names_each_kind_of_breach() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let write = |name: &str, text: &str| {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod client; pub mod hub; pub mod doc; pub mod store;",
    );
    write(
        "client/mod.rs",
        "use crate::hub::limits;\nuse crate::doc::Record;\n",
    );
    write(
        "hub/mod.rs",
        "mod inner { fn f() { super::super::store::LocalStore::open(); } }\n",
    );
    write(
        "doc/mod.rs",
        "use std::fs;\nfn f() { std::thread::spawn(|| ()); }\n#[cfg(test)] mod tests { use crate::store::SledStorage; }\n",
    );
    write("store/mod.rs", "use crate::doc::Record;\nuse sled::Db;\n");
    write("stray.rs", "");
    let (found, unplaced) = breaches(&src);
    let report: Vec<String> = found.iter().map(ToString::to_string).collect();
    let expect = [
        "src/client/mod.rs:1: `crate::hub::limits`",
        "src/doc/mod.rs:1: `std::fs`",
        "src/doc/mod.rs:2: `std::thread::spawn`",
        "src/doc/mod.rs:3: `crate::store::SledStorage`",
        "src/hub/mod.rs:1: `crate::store::LocalStore::open`",
    ];
    assert_eq!(report.len(), expect.len(), "{report:#?}");
    for (line, expected) in report.iter().zip(expect) {
        assert!(line.starts_with(expected), "{line} (expected {expected})");
    }
    assert_eq!(unplaced, vec!["stray".to_string()]);
}
