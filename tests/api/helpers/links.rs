//! Test-owned TCP links in front of RabbitMQ and PostgreSQL, so a test can
//! cut a service away from one server and restore it, without stopping the
//! service other tests use.

use tokio::task::JoinHandle;

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A TCP forwarder that a test cuts and restores.
pub struct TcpLink {
    port: u16,
    /// `host:port` of the real service.
    target: String,
    forwarding: Option<JoinHandle<()>>,
}

/// The link in front of RabbitMQ.
pub type BrokerLink = TcpLink;

impl TcpLink {
    /// A link to the RabbitMQ of `TEST_AMQP_URL`.
    pub async fn up() -> Self {
        let broker: lapin::uri::AMQPUri = amqp_url().parse().expect("TEST_AMQP_URL");
        Self::to(format!(
            "{}:{}",
            broker.authority.host, broker.authority.port
        ))
        .await
    }

    /// A link to the PostgreSQL that `database_url` names; see [`Self::postgres_url`].
    pub async fn to_postgres_of(database_url: &str) -> Self {
        Self::to(authority(database_url).to_owned()).await
    }

    async fn to(target: String) -> Self {
        let (listener, port) = listener_below_ephemeral_ports().await;
        Self {
            port,
            forwarding: Some(tokio::spawn(forward(listener, target.clone()))),
            target,
        }
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// `database_url` going through this link.
    pub fn postgres_url(&self, database_url: &str) -> String {
        database_url.replacen(
            authority(database_url),
            &format!("127.0.0.1:{}", self.port),
            1,
        )
    }

    /// Drops every forwarded connection and refuses new ones.
    pub fn cut(&mut self) {
        if let Some(forwarding) = self.forwarding.take() {
            forwarding.abort();
        }
    }

    pub async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.forwarding = Some(tokio::spawn(forward(listener, self.target.clone())));
    }
}

/// A listener on a port below Linux's ephemeral range (32768–60999): while
/// the link is cut, no outgoing connection can take its port as a local
/// one, so `restore` binds it again. (A port from `:0` is ephemeral, and was
/// once taken in between: AddrInUse.)
async fn listener_below_ephemeral_ports() -> (tokio::net::TcpListener, u16) {
    for _ in 0..1_000 {
        let port = 20_000 + (uuid::Uuid::now_v7().as_u128() % 12_000) as u16;
        if let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            return (listener, port);
        }
    }
    panic!("no free port between 20000 and 32000 for a test link");
}

/// `host:port` of a `scheme://user@host:port/db` URL.
fn authority(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let after_user = after_scheme
        .rsplit_once('@')
        .map_or(after_scheme, |(_, rest)| rest);
    after_user.split('/').next().unwrap_or(after_user)
}

/// Forwards each connection to the target; aborting this task drops them all.
async fn forward(listener: tokio::net::TcpListener, target: String) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        let target = target.clone();
        connections.spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}
