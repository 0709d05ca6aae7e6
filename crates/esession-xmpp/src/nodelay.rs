//! tokio-xmpp's plain-TCP, STARTTLS and direct-TLS connectors, with `TCP_NODELAY` set on the
//! socket, and [`Srv`], which tries the places the JID's domain lists in DNS (XEP-0368) with
//! the right one of them.
//!
//! tokio-xmpp 6 leaves Nagle's algorithm on. A stanza written in more than one piece then waits
//! for the server's delayed acknowledgement of the first: `cargo xtask load` measured a p99
//! latency of 45-50 ms for single messages against a p50 under 1 ms (docs/performance.md). The
//! connectors below are tokio-xmpp's own (`TcpServerConnector`, `StartTlsServerConnector`,
//! `DirectTlsServerConnector`), step for step, with `set_nodelay(true)` on the stream right
//! after it connects; the TLS handshake is tokio-xmpp's (`tls_common::establish_tls_connection`:
//! rustls, the system's roots, the certificate checked against the JID's domain).

use crate::smfix::{AckGate, SmFailedFix};
use sasl::common::ChannelBinding;
use std::borrow::Cow;
use std::sync::Arc;
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
pub(crate) struct Plain(pub(crate) DnsConfig, pub(crate) Option<Arc<AckGate>>);

impl ServerConnector for Plain {
    type Stream = BufStream<SmFailedFix<TcpStream>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error> {
        let stream = BufStream::new(SmFailedFix::new(connect_tcp(&self.0).await?, self.1.clone()));
        Ok((initiate_stream(stream, ns, header(jid), timeouts).await?, ChannelBinding::None))
    }
}

/// STARTTLS (rustls, the system's roots).
#[cfg(feature = "starttls")]
#[derive(Debug, Clone)]
pub(crate) struct StartTls(pub(crate) DnsConfig, pub(crate) Option<Arc<AckGate>>);

#[cfg(feature = "starttls")]
impl ServerConnector for StartTls {
    type Stream = TlsStream;

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
        Ok((
            initiate_stream(BufStream::new(SmFailedFix::new(tls, self.1.clone())), ns, header(jid), timeouts)
                .await?,
            binding,
        ))
    }
}

/// The stream both TLS connectors produce (the same type: [`Srv`] uses either).
#[cfg(feature = "starttls")]
type TlsStream = BufStream<SmFailedFix<tokio_xmpp::connect::tls_common::TlsStream<TcpStream>>>;

/// Direct TLS (XEP-0368, RFC 7590 §3.2): TLS from the first octet, then the stream.
#[cfg(feature = "starttls")]
#[derive(Debug, Clone)]
pub(crate) struct DirectTls(pub(crate) DnsConfig, pub(crate) Option<Arc<AckGate>>);

#[cfg(feature = "starttls")]
impl ServerConnector for DirectTls {
    type Stream = TlsStream;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error> {
        let tcp = connect_tcp(&self.0).await?;
        let domain = jid.domain().as_str();
        let (tls, binding) = tokio_xmpp::connect::tls_common::establish_tls_connection(tcp, domain).await?;
        // As tokio-xmpp's DirectTlsServerConnector: `from` in the header once under TLS
        // (RFC 6120 §4.7.1; some servers advertise SASL2 only then).
        let bare = jid.to_bare();
        let header = StreamHeader {
            to: Some(Cow::Borrowed(domain)),
            from: Some(Cow::Borrowed(bare.as_str())),
            id: None,
        };
        Ok((
            initiate_stream(BufStream::new(SmFailedFix::new(tls, self.1.clone())), ns, header, timeouts)
                .await?,
            binding,
        ))
    }
}

/// No server given: the JID's domain through DNS SRV, both services of XEP-0368 in the order
/// of [`crate::srv::order`], each place with its own method (direct TLS or STARTTLS); a place
/// that cannot be reached (TCP, TLS, the stream) passes to the next. Resolved again on every
/// (re)connection, as records change.
#[cfg(feature = "starttls")]
#[derive(Debug, Clone)]
pub(crate) struct Srv(pub(crate) Option<Arc<AckGate>>, pub(crate) Option<std::net::SocketAddr>);

#[cfg(feature = "starttls")]
impl ServerConnector for Srv {
    type Stream = TlsStream;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error> {
        let domain = jid.domain().as_str();
        let records = crate::srv::lookup(domain, self.1).await?;
        let mut rng = crate::engine::os_rng();
        let mut pick = |total: u32| rand_core::Rng::next_u32(&mut rng) % total.saturating_add(1);
        let targets = crate::srv::order(records, domain, &mut pick).map_err(|_| {
            tracing::warn!(domain, "the domain's SRV records say it offers no XMPP client service");
            tokio_xmpp::Error::Io(std::io::Error::other(format!(
                "the DNS SRV records of {domain} say it offers no XMPP client service (every target is \".\"): \
                 check the address, or name the server explicitly"
            )))
        })?;
        let mut last = tokio_xmpp::Error::Disconnected;
        for t in targets {
            tracing::debug!(host = %t.host, port = t.port, direct_tls = t.direct, "trying");
            let dns = DnsConfig::no_srv(&t.host, t.port);
            let r = if t.direct {
                DirectTls(dns, self.0.clone()).connect(jid, ns, timeouts).await
            } else {
                StartTls(dns, self.0.clone()).connect(jid, ns, timeouts).await
            };
            match r {
                Ok(connected) => return Ok(connected),
                Err(e) => {
                    tracing::debug!(host = %t.host, port = t.port, error = %e, "cannot connect");
                    last = e;
                }
            }
        }
        Err(last)
    }
}
