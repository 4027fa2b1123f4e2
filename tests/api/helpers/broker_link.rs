//! A test-owned TCP link in front of RabbitMQ, so a test can cut the broker and restore it.

use tokio::task::JoinHandle;

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A TCP forwarder to RabbitMQ that a test cuts and restores, to take the
/// broker away from one service without stopping the broker other tests use.
pub struct BrokerLink {
    port: u16,
    forwarding: Option<JoinHandle<()>>,
}

impl BrokerLink {
    pub async fn up() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        Self {
            port,
            forwarding: Some(tokio::spawn(forward(listener))),
        }
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
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
        self.forwarding = Some(tokio::spawn(forward(listener)));
    }
}

/// Forwards each connection to the broker; aborting this task drops them all.
async fn forward(listener: tokio::net::TcpListener) {
    let broker: lapin::uri::AMQPUri = amqp_url().parse().expect("TEST_AMQP_URL");
    let target = format!("{}:{}", broker.authority.host, broker.authority.port);
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
