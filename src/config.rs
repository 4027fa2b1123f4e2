//! Command line and environment: every setting is a flag and an environment
//! variable, with the names the contract gives. A bad value stops start-up
//! with clap's message, which names the flag.

mod operating;
mod secrets;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

pub use operating::OperatingSettings;
pub use secrets::SecretUrl;
use secrets::{Unquoted, parse_amqp_url, parse_database_url, parse_secret, secret_from};

use crate::{
    domain::{CreatePolicy, Grant},
    grpc::auth::DEFAULT_GRANTS_CLAIM,
};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/invites.db?mode=rwc";

#[derive(Debug, Parser)]
#[command(
    name = "invite-service",
    version,
    about = "The invite service: gRPC API, events to RabbitMQ"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API (the default).
    Serve,
    /// Apply the database migrations and exit; nothing to do is success.
    Migrate,
    /// Print a development token (HS256, signed with the configured secret).
    Token {
        /// The user id (JWT `sub`).
        #[arg(long)]
        sub: String,
        /// A verified email address (`email`, `email_verified: true`).
        #[arg(long)]
        email: Option<String>,
        /// Add the scope `invites:admin`.
        #[arg(long)]
        admin: bool,
        /// Allow inviting to a target: `TYPE/ID[=ROLE,ROLE]`, e.g.
        /// `organization/acme=member` or `party/*` (any id, any role). Repeatable.
        #[arg(long = "grant", value_name = "TYPE/ID[=ROLES]")]
        grants: Vec<Grant>,
        /// How long the token is valid.
        #[arg(long, default_value = "24h", value_parser = parse_positive_duration)]
        ttl: Duration,
    },
    /// Ask the server at `--listen` whether it serves (gRPC health); exit 0
    /// only when SERVING. For container health checks.
    Health {
        /// The health name: "" (the whole server, follows the database),
        /// `invites.v1.InviteService` (the same), or `liveness`.
        #[arg(long, default_value = "")]
        service: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = parse_positive_duration)]
        timeout: Duration,
    },
    /// Watch the published events.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print each published event as one JSON line, through a temporary queue
    /// bound to the exchange.
    Tail {
        /// The binding key, e.g. `invite.accepted` or `invite.*`.
        #[arg(long, default_value = "#")]
        binding: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address the gRPC server listens on.
    #[arg(
        long,
        env = "INVITES_LISTEN",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub listen: SocketAddr,

    /// PostgreSQL (`postgres://…`) or SQLite (`sqlite://path?mode=rwc`) URL.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL,
          value_parser = Unquoted(parse_database_url), hide_env_values = true, global = true)]
    pub database_url: SecretUrl,

    /// RabbitMQ URL.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://127.0.0.1:5672/%2f",
          value_parser = Unquoted(parse_amqp_url), hide_env_values = true, global = true)]
    pub amqp_url: SecretUrl,

    /// The topic exchange events are published to.
    #[arg(long, env = "INVITES_EXCHANGE", default_value = "invites",
          value_parser = parse_exchange, global = true)]
    pub exchange: String,

    /// HS256 secret for bearer tokens (at least 32 bytes).
    #[arg(long, env = "INVITES_JWT_SECRET", value_parser = Unquoted(parse_secret), hide_env_values = true,
          conflicts_with_all = ["jwt_secret_file", "jwt_public_key", "jwt_jwks_url"], global = true)]
    pub jwt_secret: Option<SecretString>,

    /// A file holding the HS256 secret (a trailing newline is ignored), as
    /// container platforms mount secrets.
    #[arg(long, env = "INVITES_JWT_SECRET_FILE",
          conflicts_with_all = ["jwt_public_key", "jwt_jwks_url"], global = true)]
    pub jwt_secret_file: Option<PathBuf>,

    /// Path to a PEM public key (RSA for RS256, P-256 for ES256) for bearer tokens.
    #[arg(
        long,
        env = "INVITES_JWT_PUBLIC_KEY",
        conflicts_with = "jwt_jwks_url",
        global = true
    )]
    pub jwt_public_key: Option<PathBuf>,

    /// A JWKS URL (`https://…/.well-known/jwks.json`): RS256 and ES256 keys,
    /// picked by the token's `kid`.
    #[arg(long, env = "INVITES_JWT_JWKS_URL", value_parser = Unquoted(parse_jwks_url), hide_env_values = true, global = true)]
    pub jwt_jwks_url: Option<String>,

    /// How often the JWKS is fetched again (an unknown `kid` also refetches
    /// it, at most every 10 s).
    #[arg(long, env = "INVITES_JWT_JWKS_REFRESH", default_value = "60s",
          value_parser = parse_positive_duration, global = true)]
    pub jwt_jwks_refresh: Duration,

    /// The clock skew allowed on a token's `exp` and `nbf`.
    #[arg(long, env = "INVITES_JWT_LEEWAY", default_value = "60s",
          value_parser = parse_leeway, global = true)]
    pub jwt_leeway: Duration,

    /// Required `iss` of bearer tokens.
    #[arg(long, env = "INVITES_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,

    /// Required `aud` of bearer tokens.
    #[arg(long, env = "INVITES_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,

    /// Who may create invites: `grants` (a caller's token must grant the
    /// target and role; admins may do anything) or `open` (any authenticated
    /// caller, as before grants existed; not for production).
    #[arg(long, env = "INVITES_CREATE_POLICY", default_value = "grants",
          value_parser = parse_create_policy, global = true)]
    pub create_policy: CreatePolicy,

    /// The JWT claim that lists what a caller may invite to (identity
    /// providers often require a namespaced name, e.g. `https://example.com/invite_grants`).
    #[arg(long, env = "INVITES_GRANTS_CLAIM", default_value = DEFAULT_GRANTS_CLAIM,
          value_parser = parse_claim_name, global = true)]
    pub grants_claim: String,

    /// How long a new invite is valid when the request gives no expiry.
    #[arg(long, env = "INVITES_DEFAULT_TTL", default_value = "7d",
          value_parser = parse_positive_duration, global = true)]
    pub default_ttl: Duration,

    /// The longest an invite may be valid (creation, update, resend).
    #[arg(long, env = "INVITES_MAX_TTL", default_value = "365d",
          value_parser = parse_positive_duration, global = true)]
    pub max_ttl: Duration,

    /// How often pending invites past their expiry are turned into EXPIRED.
    #[arg(long, env = "INVITES_SWEEP_INTERVAL", default_value = "1m",
          value_parser = parse_positive_duration, global = true)]
    pub sweep_interval: Duration,

    /// Invites each caller may create per minute, each batch address
    /// counting (per replica; admins exempt; 0: no limit). At least 1,000,
    /// or the largest batch can never pass.
    #[arg(
        long,
        env = "INVITES_CREATE_RATE_LIMIT",
        default_value_t = 1000,
        global = true
    )]
    pub create_rate_limit: u32,

    /// Calls presenting an invite token (accept, reject, get by token) each
    /// caller may make per minute: guessing tokens stays slow (per replica;
    /// admins exempt; 0: no limit).
    #[arg(
        long,
        env = "INVITES_TOKEN_RATE_LIMIT",
        default_value_t = 60,
        global = true
    )]
    pub token_rate_limit: u32,

    /// How long a stopping server waits for in-flight calls and the last events.
    #[arg(long, env = "INVITES_DRAIN_TIMEOUT", default_value = "30s",
          value_parser = parse_positive_duration, global = true)]
    pub drain_timeout: Duration,

    /// The secret that seals the tokens kept for idempotent replays (at
    /// least 32 bytes). Unset: derived from the HS256 secret, or from the
    /// development secret beside a SQLite file.
    #[arg(long, env = "INVITES_REPLAY_SEAL_SECRET", value_parser = Unquoted(parse_secret),
          hide_env_values = true, conflicts_with = "replay_seal_secret_file", global = true)]
    pub replay_seal_secret: Option<SecretString>,

    /// A file holding the replay seal secret (a trailing newline is ignored).
    #[arg(long, env = "INVITES_REPLAY_SEAL_SECRET_FILE", global = true)]
    pub replay_seal_secret_file: Option<PathBuf>,

    #[command(flatten)]
    pub operating: OperatingSettings,
}

impl Settings {
    pub fn pool(&self) -> crate::store::PoolSettings {
        crate::store::PoolSettings {
            size: self.operating.database_pool_size,
            acquire_timeout: self.operating.database_acquire_timeout,
        }
    }

    /// The HS256 secret, from `--jwt-secret` or its file.
    pub fn hs256_secret(&self) -> anyhow::Result<Option<SecretString>> {
        secret_from(
            self.jwt_secret.as_ref(),
            self.jwt_secret_file.as_deref(),
            "--jwt-secret-file / INVITES_JWT_SECRET_FILE",
        )
    }

    /// The replay seal secret, from `--replay-seal-secret` or its file.
    pub fn seal_secret(&self) -> anyhow::Result<Option<SecretString>> {
        secret_from(
            self.replay_seal_secret.as_ref(),
            self.replay_seal_secret_file.as_deref(),
            "--replay-seal-secret-file / INVITES_REPLAY_SEAL_SECRET_FILE",
        )
    }
}

/// `1s`, `15m`, `7d`, `1h 30m`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("{e} (write durations like 30s, 15m, 7d)"))
}

/// Longer than zero and at most ten years: a bound keeps `now + d` far from
/// any clock's overflow.
pub(crate) fn parse_positive_duration(raw: &str) -> Result<Duration, String> {
    const TEN_YEARS: Duration = Duration::from_secs(3650 * 86_400);
    match parse_duration(raw)? {
        d if d.is_zero() => Err("must be longer than zero".into()),
        d if d > TEN_YEARS => Err("must be at most 3650d".into()),
        d => Ok(d),
    }
}

/// At most ten minutes: a leeway is for clocks that drift, not for tokens
/// that should have been refreshed.
fn parse_leeway(raw: &str) -> Result<Duration, String> {
    match parse_duration(raw)? {
        d if d > Duration::from_secs(600) => Err("must be at most 10m".into()),
        d => Ok(d),
    }
}

/// http or https, without credentials: a JWKS is public, and a URL with a
/// password in it would end up in logs.
fn parse_jwks_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be an https:// (or http://) URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(raw.to_owned())
}

fn parse_exchange(raw: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
    if (1..=127).contains(&raw.len()) && raw.chars().all(allowed) {
        Ok(raw.to_owned())
    } else {
        Err("must be 1-127 characters of letters, digits, - _ . :".into())
    }
}

fn parse_create_policy(raw: &str) -> Result<CreatePolicy, String> {
    match raw {
        "grants" => Ok(CreatePolicy::Grants),
        "open" => Ok(CreatePolicy::Open),
        _ => Err("must be `grants` or `open`".into()),
    }
}

/// A custom claim's name; never a registered or identity claim, which mean
/// something else (and would leave every caller without grants).
fn parse_claim_name(raw: &str) -> Result<String, String> {
    const TAKEN: [&str; 12] = [
        "sub",
        "exp",
        "nbf",
        "iat",
        "iss",
        "aud",
        "jti",
        "scope",
        "email",
        "email_verified",
        "phone_number",
        "phone_number_verified",
    ];
    if !(1..=256).contains(&raw.len()) || raw.chars().any(char::is_control) {
        Err("must be 1-256 characters without control characters".into())
    } else if TAKEN.contains(&raw) {
        Err(format!(
            "must not be `{raw}`, a claim that already means something else"
        ))
    } else {
        Ok(raw.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_configuration() {
        let cli = Cli::try_parse_from(["invite-service"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.settings.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(cli.settings.exchange, "invites");
        assert_eq!(cli.settings.default_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(cli.settings.create_policy, CreatePolicy::Grants);
        assert_eq!(cli.settings.grants_claim, "invite_grants");
    }

    #[test]
    fn a_bad_value_names_its_flag() {
        let err = Cli::try_parse_from(["invite-service", "--default-ttl", "soon"]).unwrap_err();
        assert!(err.to_string().contains("--default-ttl"), "{err}");
        let err =
            Cli::try_parse_from(["invite-service", "--database-url", "mysql://x"]).unwrap_err();
        assert!(err.to_string().contains("--database-url"), "{err}");
        let err = Cli::try_parse_from(["invite-service", "--create-policy", "anyone"]).unwrap_err();
        assert!(err.to_string().contains("--create-policy"), "{err}");
        let err = Cli::try_parse_from(["invite-service", "--grants-claim", "scope"]).unwrap_err();
        assert!(err.to_string().contains("--grants-claim"), "{err}");
    }

    #[test]
    fn a_refused_secret_or_url_is_never_quoted() {
        let refused = [
            ("--amqp-url", "amqp:guest:s3cret@rabbit"),
            ("--amqp-url", "http://guest:s3cret@rabbit"),
            ("--database-url", "mysql://root:s3cret@db"),
            ("--database-url", "postgres://app:s3cret#1@db/invites"),
            ("--jwt-secret", "s3cret"),
            ("--replay-seal-secret", "s3cret"),
            ("--jwt-jwks-url", "https://user:s3cret@idp.example/jwks"),
        ];
        for (flag, bad) in refused {
            let err = Cli::try_parse_from(["invite-service", flag, bad]).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(flag), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
        let err = Cli::try_parse_from(["invite-service", "--amqp-url", ""]).unwrap_err();
        assert!(
            err.to_string()
                .contains("'--amqp-url <AMQP_URL>': is empty"),
            "{err}"
        );
    }

    #[test]
    fn durations_are_bounded() {
        for bad in ["0s", "20000d"] {
            let err = Cli::try_parse_from(["invite-service", "--max-ttl", bad]).unwrap_err();
            assert!(err.to_string().contains("--max-ttl"), "{err}");
        }
    }

    #[test]
    fn settings_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "invite-service",
            "token",
            "--sub",
            "alice",
            "--admin",
            "--exchange",
            "x",
        ])
        .unwrap();
        assert_eq!(cli.settings.exchange, "x");
        assert!(matches!(
            cli.command,
            Some(Command::Token { admin: true, .. })
        ));
    }

    #[test]
    fn token_takes_repeated_grants_and_names_a_bad_one() {
        let cli = Cli::try_parse_from([
            "invite-service",
            "token",
            "--sub",
            "alice",
            "--grant",
            "organization/acme=admin,member",
            "--grant",
            "party/*",
        ])
        .unwrap();
        let Some(Command::Token { grants, .. }) = cli.command else {
            panic!("not the token command");
        };
        let grants: Vec<String> = grants.iter().map(ToString::to_string).collect();
        assert_eq!(grants, ["organization/acme=admin,member", "party/*"]);
        let err = Cli::try_parse_from(["invite-service", "token", "--sub", "a", "--grant", "acme"])
            .unwrap_err();
        assert!(err.to_string().contains("--grant"), "{err}");
    }
}
