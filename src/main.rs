//! The `regdoc` command. All it does is in the library (`regdoc::cli`), where tests reach it;
//! this is the runtime around it.

use std::process::ExitCode;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    regdoc::cli::main().await
}
