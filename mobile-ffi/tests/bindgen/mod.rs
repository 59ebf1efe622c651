//! What the binding tests share: the cdylib cargo built, the bindings `uniffi-bindgen`
//! generates from it, and the check that no exported name shadows what a target language or
//! UniFFI's templates use.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const BINDGEN: &str = env!("CARGO_BIN_EXE_uniffi-bindgen");

/// The cdylib cargo built beside this test (`target/<profile>/libmobile_ffi.so` or the like).
pub fn built_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let name = format!(
        "{}mobile_ffi{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    // Built as another crate's dependency, the cdylib stays in `deps/`; built on its own, it is
    // also copied up beside `deps/`. The newer of the two is this build's.
    let newest = [
        profile_dir.join("deps").join(&name),
        profile_dir.join(&name),
    ]
    .into_iter()
    .filter_map(|path| Some((std::fs::metadata(&path).ok()?.modified().ok()?, path)))
    .max();
    let library = match newest {
        Some((_, path)) => path,
        None => profile_dir.join(&name),
    };
    if !library.exists() {
        // `cargo test` builds this crate's library only as the tests' rlib and leaves out the
        // cdylib. Ask for it with the same selection `cargo test --workspace` made (libraries,
        // binaries and tests of the whole workspace, so the same features): everything else is
        // already fresh and only the cdylib is linked.
        let status = Command::new(env!("CARGO"))
            .args(["build", "--workspace", "--lib", "--bins", "--tests"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the cdylib");
        assert!(status.success(), "building the cdylib failed");
    }
    assert!(library.exists(), "{} was not built", library.display());
    library
}

/// Generates the `language` bindings of `library` into `out`.
pub fn generate(library: &Path, language: &str, out: &Path) {
    let output = Command::new(BINDGEN)
        .arg("generate")
        .arg(library)
        .args(["--language", language, "--no-format", "--metadata-no-deps"])
        .arg("--out-dir")
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run uniffi-bindgen");
    assert!(
        output.status.success(),
        "uniffi-bindgen {language}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Names an exported type must not take: what Kotlin (with `java.lang`, imported into every
/// Kotlin file) and Swift name without an import, and what UniFFI's templates declare or call.
/// A record called `System` made the generated `chiefsync.kt` fail to compile.
#[rustfmt::skip]
pub const RESERVED: &[&str] = &[
    // Kotlin and the JVM (kotlin.*, kotlin.collections.*, java.lang.*).
    "Any", "Unit", "Nothing", "String", "Int", "Long", "Short", "Byte", "Char", "Boolean",
    "Float", "Double", "Number", "Array", "List", "Map", "Set", "Pair", "Triple", "Result",
    "Error", "Exception", "Throwable", "Object", "Class", "System", "Thread", "Runtime",
    "Process", "Math", "Enum", "Record", "Comparable", "Iterable", "Sequence", "Lazy",
    "Function", "Void", "Package", "Module", "Override", "Deprecated", "Integer", "Character",
    "StringBuilder", "Runnable", "AutoCloseable", "Cloneable", "Iterator", "Collection",
    "Annotation", "Structure", "Pointer", "Native", "Library", "Callback", "ByteBuffer",
    "ByteOrder", "Cleaner",
    // Swift and Foundation.
    "Type", "Protocol", "Self", "Optional", "Data", "Date", "URL", "UUID", "Dictionary", "Bool",
    "Never", "AnyObject", "Codable", "Hashable", "Equatable", "Sendable", "Task", "Actor",
    "Decimal", "Locale", "Timer", "Notification", "Operation", "Bundle", "Substring",
    "OpaquePointer", "UnsafeMutableRawPointer", "NSLock", "Hasher", "Identifiable",
    // UniFFI's templates.
    "RustBuffer", "ForeignBytes", "RustCallStatus", "Disposable", "NoHandle", "NoPointer",
    "InternalException", "FfiConverter", "FfiConverterRustBuffer", "ChiefsyncFfi",
];

/// The exported types of generated bindings, by the converter UniFFI writes for each one
/// (`FfiConverterTypeAsset` for `Asset`), in Kotlin, Swift and Python alike.
pub fn exported_types(bindings: &Path) -> BTreeSet<String> {
    let source =
        std::fs::read_to_string(bindings).unwrap_or_else(|e| panic!("{}: {e}", bindings.display()));
    let mut names = BTreeSet::new();
    for (i, _) in source.match_indices("FfiConverterType") {
        let name: String = source[i + "FfiConverterType".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.insert(name);
        }
    }
    names
}

/// Fails with every exported type of `bindings` that takes a reserved name. The Kotlin name of
/// an error type ends in `Exception` instead of `Error`, so both are checked.
pub fn assert_no_reserved_names(bindings: &Path) {
    let names = exported_types(bindings);
    assert!(
        names.contains("FieldClient") && names.contains("ChiefSystem"),
        "the exported types were not found in {}: {names:?}",
        bindings.display()
    );
    let clashes: Vec<&String> = names
        .iter()
        .filter(|name| {
            let kotlin_error = name
                .strip_suffix("Error")
                .map(|stem| format!("{stem}Exception"));
            RESERVED.contains(&name.as_str())
                || kotlin_error.is_some_and(|k| RESERVED.contains(&k.as_str()))
        })
        .collect();
    assert!(
        clashes.is_empty(),
        "exported types of {} shadow names the bindings' languages use: {clashes:?}; \
         rename them at the boundary with #[uniffi(name = \"...\")]",
        bindings.display()
    );
}
