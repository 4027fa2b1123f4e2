//! `health`: the container's HEALTHCHECK without extra binaries. Asks the
//! server at `--listen` over gRPC health and succeeds only on SERVING.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use anyhow::Context as _;
use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Probes `listen` for `service` ("" is the whole server); Ok only when SERVING.
pub async fn probe(listen: SocketAddr, service: &str, timeout: Duration) -> anyhow::Result<()> {
    let address = reachable(listen);
    let channel = Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .with_context(|| format!("nothing answers at {address}"))?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .with_context(|| format!("health check of {service:?} at {address}"))?
        .into_inner();
    let status = answer.status();
    anyhow::ensure!(
        status == ServingStatus::Serving,
        "{service:?} at {address} is {}",
        status.as_str_name()
    );
    Ok(())
}

/// A server listening on every interface is probed on loopback.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interface_is_probed_on_loopback() {
        let probed = |listen: &str| reachable(listen.parse().unwrap()).to_string();
        assert_eq!(probed("0.0.0.0:50051"), "127.0.0.1:50051");
        assert_eq!(probed("[::]:50051"), "[::1]:50051");
        assert_eq!(probed("10.1.2.3:7"), "10.1.2.3:7");
    }
}
