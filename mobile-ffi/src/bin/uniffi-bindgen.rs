//! `uniffi-bindgen`: generates the Kotlin, Swift and Python bindings of the built library, e.g.
//! `cargo run -p mobile-ffi --bin uniffi-bindgen -- generate --library target/debug/libmobile_ffi.so --language kotlin --out-dir out`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
