//! The `cwpulse` command: parses arguments, sets up logging, loads the config
//! and hands over to the library. Exit codes: 0 ok, 1 runtime error, 78 bad
//! configuration (systemd's `RestartPreventExitStatus=78` stops a restart loop).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cwpulse::config::{self, Config, EXIT_CONFIG, Source};
use cwpulse::identity::{self, Identity};
use cwpulse::{agent, alarms, cost, publish, shutdown};

#[derive(Parser)]
#[command(
    name = "cwpulse",
    version,
    about = "CPU and health-route metrics from EC2 to CloudWatch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// Config file [default: /etc/cwpulse/cwpulse.toml, built-in defaults if absent]
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Root of the proc filesystem (for tests)
    #[arg(long, default_value = "/proc", hide = true)]
    proc_root: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGTERM or SIGINT.
    Run(Common),
    /// Validate the config and print it with every default filled in.
    Check(Common),
    /// Sample one short window and print the datums as JSON; sends nothing.
    Once {
        #[command(flatten)]
        common: Common,
        /// How long to sample.
        #[arg(long, default_value = "2s", value_parser = config::parse_duration)]
        duration: Duration,
    },
    /// Print the spool depth, the oldest unsent window, the last successful
    /// publish and the last error (from the agent's state file).
    Status(Common),
    /// Plan, apply or delete the CloudWatch alarms this config implies.
    Alarms {
        #[command(subcommand)]
        action: AlarmsAction,
    },
    /// Print the monthly CloudWatch bill this config produces.
    Cost {
        #[command(flatten)]
        common: Common,
        /// How many instances run the agent (in one Auto Scaling group).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        instances: u64,
    },
}

#[derive(Subcommand)]
enum AlarmsAction {
    /// Print what `apply` would change; changes nothing.
    Plan(AlarmsArgs),
    /// Create or update the alarms; a second run changes nothing.
    Apply(AlarmsArgs),
    /// Delete the alarms `cwpulse alarms` made for this identity.
    Delete(AlarmsArgs),
}

#[derive(clap::Args)]
struct AlarmsArgs {
    #[command(flatten)]
    common: Common,
    /// SNS topic to notify on ALARM and OK (repeatable; adds to [alarms] sns_topic_arns).
    #[arg(long = "sns-topic-arn", value_name = "ARN")]
    sns_topic_arns: Vec<alarms::TopicArn>,
    /// Auto Scaling group name [default: from instance metadata]
    #[arg(long)]
    asg: Option<String>,
    /// Instance id [default: from instance metadata]
    #[arg(long)]
    instance_id: Option<String>,
    /// Which alarms: all, asg (shared series only) or instance (per-instance only).
    #[arg(long, default_value = "all", value_parser = ["all", "asg", "instance"])]
    scope: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let common = match &cli.command {
        Command::Run(c)
        | Command::Check(c)
        | Command::Status(c)
        | Command::Once { common: c, .. } => c,
        Command::Alarms { action } => return alarms_main(action),
        Command::Cost { common, instances } => return cost_main(common, *instances),
    };
    let source = match &common.config {
        Some(p) => Source::Explicit(p.clone()),
        None => Source::Default,
    };
    let (config, path) = match config::load(&source) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("cwpulse: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let path_label = path.as_ref().map_or_else(
        || "built-in defaults".to_owned(),
        |p| p.display().to_string(),
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start the async runtime");
    let result = match cli.command {
        Command::Check(_) => {
            println!(
                "# cwpulse {} effective configuration from {path_label}",
                env!("CARGO_PKG_VERSION")
            );
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Status(_) => status(&config),
        Command::Once { common, duration } => rt.block_on(once(&config, &common, duration)),
        Command::Run(common) => rt.block_on(run(&config, &common, &path_label)),
        Command::Alarms { .. } | Command::Cost { .. } => unreachable!("dispatched above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: &Config, common: &Common, path_label: &str) -> Result<(), String> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = path_label,
        "cwpulse starting"
    );
    let (trigger, shutdown) = shutdown::channel();
    shutdown::on_signals(trigger)
        .await
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let env = agent::connect(config).await.map_err(|e| e.to_string())?;
    agent::run(config, &common.proc_root, env, shutdown)
        .await
        .map_err(|e| e.to_string())
}

async fn once(config: &Config, common: &Common, duration: Duration) -> Result<(), String> {
    let id = once_identity(config).await;
    let datums = agent::once(config, &common.proc_root, &id, duration)
        .await
        .map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&datums).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

/// `cwpulse status`: reads the state file the running (or last) agent keeps
/// in its spool directory; no listening port is involved.
fn status(config: &Config) -> Result<(), String> {
    use cwpulse::spool::{self, now_ms};
    let dir = &config.spool.dir;
    let st =
        spool::read_state(dir).map_err(|e| format!("{e} (has the agent run with this config?)"))?;
    let now = now_ms();
    let when = |ms: Option<i64>| match ms {
        None => "never".to_owned(),
        Some(ms) => {
            let t = aws_smithy_types::DateTime::from_millis(ms)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap_or_default();
            format!("{t} ({}s ago)", (now - ms).max(0) / 1000)
        }
    };
    println!("spool:          {}", dir.display());
    println!(
        "unsent:         {} windows, {} bytes",
        st.unsent_windows, st.unsent_bytes
    );
    println!(
        "oldest unsent:  {}",
        if st.oldest_unsent_ms.is_some() {
            when(st.oldest_unsent_ms)
        } else {
            "-".into()
        }
    );
    println!("last publish:   {}", when(st.last_success_ms));
    match (&st.last_error, st.last_error_ms) {
        (Some(e), ms) => println!("last error:     {} {e}", when(ms)),
        _ => println!("last error:     none"),
    }
    println!("sent datums:    {}", st.sent_datums);
    println!(
        "dropped:        {} windows evicted (spool full), {} datums expired, {} datums rejected, {} files quarantined",
        st.evicted_windows, st.expired_datums, st.rejected_datums, st.quarantined_files
    );
    println!(
        "state updated:  {} by pid {}",
        when(Some(st.updated_ms)),
        st.pid
    );
    Ok(())
}

/// `once` must work anywhere: overrides first, then a quick IMDS attempt
/// (unless the SDK's `AWS_EC2_METADATA_DISABLED` is set), then "unknown".
async fn once_identity(config: &Config) -> Identity {
    let (need_instance, need_asg) = identity::needs(&config.publish.dimension_sets);
    let imds_disabled =
        std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let mut id = Identity {
        instance_id: config.identity.instance_id.as_ref().map(|v| v.0.clone()),
        autoscaling_group: config
            .identity
            .autoscaling_group
            .as_ref()
            .map(|v| v.0.clone()),
    };
    if !imds_disabled {
        let imds = identity::imds_client(publish::http_client());
        let lookup = identity::resolve(
            &config.identity,
            need_instance,
            need_asg,
            &imds,
            async |_: &str| Ok(None),
        );
        match tokio::time::timeout(Duration::from_secs(3), lookup).await {
            Ok(Ok(found)) => id = found,
            Ok(Err(e)) => tracing::info!("No instance metadata ({e}); using placeholders"),
            Err(_) => tracing::info!("No instance metadata within 3s; using placeholders"),
        }
    }
    if need_instance && id.instance_id.is_none() {
        id.instance_id = Some("unknown".into());
    }
    if need_asg && id.autoscaling_group.is_none() {
        id.autoscaling_group = Some("unknown".into());
    }
    id
}

/// Logs go to stderr (the journal under systemd). `CWPULSE_LOG` takes
/// tracing targets such as `debug` or `info,cwpulse=debug`.
fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter: Targets = std::env::var("CWPULSE_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| "warn,cwpulse=info".parse().expect("static filter"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .with(filter)
        .init();
}

/// `cwpulse alarms plan|apply|delete`. Exit codes: 0 done, 1 an AWS error or
/// (for `apply`) alarms left alone because something else owns their names,
/// 78 bad configuration.
fn alarms_main(action: &AlarmsAction) -> ExitCode {
    let (action, args) = match action {
        AlarmsAction::Plan(a) => (alarms::Action::Plan, a),
        AlarmsAction::Apply(a) => (alarms::Action::Apply, a),
        AlarmsAction::Delete(a) => (alarms::Action::Delete, a),
    };
    let (config, _) = match config::load(&config_source(&args.common)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cwpulse: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let opts = alarms::Options {
        sns_topic_arns: args.sns_topic_arns.clone(),
        autoscaling_group: args.asg.clone(),
        instance_id: args.instance_id.clone(),
        scope: match args.scope.as_str() {
            "asg" => alarms::Scope::Shared,
            "instance" => alarms::Scope::Instance,
            _ => alarms::Scope::All,
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start the async runtime");
    match rt.block_on(alarms::run(action, &config, &config.alarms, &opts)) {
        Ok(outcome) => {
            print!("{}", alarms::render(action, &outcome));
            let conflicts = outcome
                .changes
                .iter()
                .any(|c| matches!(c, alarms::Change::Conflict { .. }));
            if conflicts && action == alarms::Action::Apply {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `cwpulse cost`: arithmetic only, no AWS.
fn cost_main(common: &Common, instances: u64) -> ExitCode {
    let (config, path) = match config::load(&config_source(common)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cwpulse: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let label = path.as_ref().map_or_else(
        || "the built-in defaults".to_owned(),
        |p| p.display().to_string(),
    );
    let estimate = cost::estimate(&config, &config.alarms, instances);
    print!("{}", cost::render(&estimate, &label));
    ExitCode::SUCCESS
}

fn config_source(common: &Common) -> Source {
    match &common.config {
        Some(p) => Source::Explicit(p.clone()),
        None => Source::Default,
    }
}
