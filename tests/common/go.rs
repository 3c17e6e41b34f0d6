//! Go for the tests that run the article's programs (`labs/go/`).
//!
//! Go may be missing on a developer's machine: then a test prints why it is
//! skipped and returns, unless `LAB_REQUIRE_GO=1` (set by CI), where a
//! missing Go fails it: in CI the Go side must run.

use lab::golang::toolchain::Toolchain;

/// What a skipped test prints.
pub const SKIPPED: &str =
    "skipped: Go is not installed (sudo apt-get install golang-go); the Go side did not run";

/// Whether Go tests can run here. Missing Go: panics under
/// `LAB_REQUIRE_GO=1`, otherwise prints [`SKIPPED`] and says no.
pub fn available() -> bool {
    match Toolchain::find() {
        Ok(toolchain) => {
            built(&toolchain);
            true
        }
        Err(err) => {
            if std::env::var("LAB_REQUIRE_GO").is_ok_and(|v| v == "1") {
                panic!("LAB_REQUIRE_GO=1 but Go cannot be used: {err:#}");
            }
            eprintln!("{SKIPPED}");
            false
        }
    }
}

/// Builds the module once per test process before any test times a Go
/// program: the first build on a fresh machine compiles net/http and the rest
/// of the standard library, which takes longer than a test step allows.
fn built(toolchain: &Toolchain) {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let toolchain = toolchain.clone();
        // A runtime of its own on a thread of its own: the caller may be
        // inside a tokio test already.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            runtime
                .block_on(lab::golang::build::binaries(
                    &lab::golang::GoModule::built_in(),
                    &toolchain,
                ))
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        })
        .join()
        .unwrap_or_else(|_| Err("the build thread panicked".into()))
    });
    if let Err(err) = result {
        panic!("the Go module does not build: {err}");
    }
}
