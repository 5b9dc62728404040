//! `ebm-train`: the command line over the ebm libraries.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    ebm_kernels::runtime::tune_allocator();
    ebm_kernels::runtime::default_thread_counts();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            std::process::ExitCode::from(exit_code(&e))
        }
    }
}

/// The exit status of a failed command: 2 a config or setting that cannot work, 3 a checkpoint, model or run
/// folder that cannot be used (damaged, another run's, in use), 4 a run that diverged, 1 anything else (data
/// missing, a file system error, ...).
fn exit_code(e: &anyhow::Error) -> u8 {
    use ebm_cd::CdError;
    if let Some(cd) = e.downcast_ref::<CdError>() {
        return match cd.root() {
            CdError::Config { .. } => 2,
            CdError::Checkpoint { .. } | CdError::RunFolder { .. } | CdError::Model(_) | CdError::Io(_) => 3,
            CdError::Diverged { .. } => 4,
            CdError::Eval(ebm_eval::EvalError::Settings(_)) => 2,
            CdError::Eval(ebm_eval::EvalError::Input { .. } | ebm_eval::EvalError::Io(_)) => 3,
            _ => 1,
        };
    }
    match e.downcast_ref::<ebm_eval::EvalError>() {
        Some(ebm_eval::EvalError::Settings(_)) => 2,
        Some(ebm_eval::EvalError::Input { .. } | ebm_eval::EvalError::Io(_)) => 3,
        _ => 1,
    }
}

/// One line for an error and its causes, each cause said once (the libraries' messages already include the
/// error they wrap; a cause is left out when the message before it already says it).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out.replace('\n', " ")
}
