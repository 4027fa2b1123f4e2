use clap::Parser as _;
use invite_service::{
    cli,
    config::{Cli, Command, EventsCommand},
    grpc::auth::TokenRequest,
    startup::Application,
    telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { settings, command } = Cli::parse();
    telemetry::init(settings.operating.log_format);
    match command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings).await?;
            tracing::info!(listen = %app.local_addr(), "serving invites.v1.InviteService");
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate => cli::migrate(&settings).await,
        Command::Token {
            sub,
            email,
            admin,
            grants,
            ttl,
        } => cli::token(
            &settings,
            &TokenRequest {
                sub: &sub,
                email: email.as_deref(),
                admin,
                ttl,
                issuer: settings.jwt_issuer.as_deref(),
                audience: settings.jwt_audience.as_deref(),
                grants: &grants,
                grants_claim: &settings.grants_claim,
            },
        ),
        Command::Health { service, timeout } => {
            cli::health(settings.listen, &service, timeout).await
        }
        Command::Events {
            command: EventsCommand::Tail { binding },
        } => cli::events_tail(&settings, &binding).await,
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
