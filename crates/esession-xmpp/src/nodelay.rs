//! tokio-xmpp's plain-TCP and STARTTLS connectors, with `TCP_NODELAY` set on the socket.
//!
//! tokio-xmpp 6 leaves Nagle's algorithm on. A stanza written in more than one piece then waits
//! for the server's delayed acknowledgement of the first: `cargo xtask load` measured a p99
//! latency of 45-50 ms for single messages against a p50 under 1 ms (docs/performance.md). The
//! connectors below are tokio-xmpp's own (`TcpServerConnector`, `StartTlsServerConnector`),
//! step for step, with `set_nodelay(true)` on the stream right after it connects.

use sasl::common::ChannelBinding;
use std::borrow::Cow;
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_xmpp::connect::{DnsConfig, ServerConnector};
use tokio_xmpp::jid::Jid;
use tokio_xmpp::xmlstream::{PendingFeaturesRecv, StreamHeader, Timeouts, initiate_stream};

/// Resolves and connects, with Nagle's algorithm off.
async fn connect_tcp(dns: &DnsConfig) -> Result<TcpStream, tokio_xmpp::Error> {
    let s = dns.resolve().await?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn header(jid: &Jid) -> StreamHeader<'_> {
    StreamHeader { to: Some(Cow::Borrowed(jid.domain().as_str())), from: None, id: None }
}

/// Plain TCP (loopback only, by [`crate::Tls::PlainLoopbackOnly`]).
#[derive(Debug, Clone)]
pub(crate) struct Plain(pub(crate) DnsConfig);

impl ServerConnector for Plain {
    type Stream = BufStream<TcpStream>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error> {
        let stream = BufStream::new(connect_tcp(&self.0).await?);
        Ok((initiate_stream(stream, ns, header(jid), timeouts).await?, ChannelBinding::None))
    }
}

/// STARTTLS (rustls, the system's roots).
#[cfg(feature = "starttls")]
#[derive(Debug, Clone)]
pub(crate) struct StartTls(pub(crate) DnsConfig);

#[cfg(feature = "starttls")]
impl ServerConnector for StartTls {
    type Stream = <tokio_xmpp::connect::StartTlsServerConnector as ServerConnector>::Stream;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error> {
        let tcp = BufStream::new(connect_tcp(&self.0).await?);
        let clear = initiate_stream(tcp, ns, header(jid), timeouts).await?;
        let (features, clear) = clear.recv_features().await?;
        if !features.can_starttls() {
            return Err(tokio_xmpp::Error::Protocol(tokio_xmpp::error::ProtocolError::NoTls));
        }
        let (tls, binding) = tokio_xmpp::connect::starttls::starttls(clear, jid.domain().as_str()).await?;
        Ok((initiate_stream(BufStream::new(tls), ns, header(jid), timeouts).await?, binding))
    }
}
