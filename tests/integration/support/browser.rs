//! The shared browser harness: node scripts in tests/browser drive
//! Debian's Chromium through Playwright (playwright-core) and check pages
//! with axe-core. `.ci/test` installs them (`npm ci` in tests/browser);
//! anything missing fails the test loudly, it never skips.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Runs `tests/browser/<script>` with `input` (as JSON in its first
/// argument) and returns the JSON it prints. Panics, with the script's
/// stderr, when node, the npm packages or Chromium are missing, or the
/// script fails.
pub async fn run_browser_script(script: &str, input: &Value) -> Value {
    let dir = browser_dir();
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `apt-get install chromium` (.ci/test installs it)"
    );
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && dir.join("node_modules/axe-core").is_dir(),
        "the browser tests' npm packages are missing: run `npm ci` in {} (.ci/test does)",
        dir.display()
    );
    let output = tokio::time::timeout(
        Duration::from_secs(150),
        Command::new("node")
            .arg(dir.join(script))
            .arg(input.to_string())
            .current_dir(&dir)
            .env("CRISISD_CHROMIUM", CHROMIUM)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} did not finish within 150 s"))
    .unwrap_or_else(|err| panic!("cannot run node (install nodejs; .ci/test does): {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|err| panic!("{script} printed no JSON ({err}):\n{stdout}\n{stderr}"))
}
