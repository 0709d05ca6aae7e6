//! The client: the I/O shell around an [`Engine`] over a tokio-xmpp connection. Every stanza the
//! server delivers goes to [`Engine::handle`]; what the engine returns is sent in order; the
//! engine's events reach the application through [`Client::next_event`]. What is left here is
//! what needs the network: logging in, waiting for answers to IQs, and the flows that wait on
//! them (disco before a negotiation, fetching offline options, publishing them).

use crate::engine::{
    Engine, Event, FirstUse, PepStep, PublishFlow, Rng, Route, WithdrawFlow, condition, os_rng, set_attr,
};
use crate::{Account, BareJid, ClientBuilder, Error, Jid, parse_jid};
use esession_crypto::{PrivateKey, Profile};
use esession_negotiate::Mode;
use esession_offline::{Audience, pep};
use esession_stanza::EncryptOptions;
use futures_util::StreamExt;
use minidom::Element;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio_xmpp::connect::{DnsConfig, ServerConnector};
use tokio_xmpp::parsers::stanza::Stanza;
use tokio_xmpp::stanzastream::{Event as Wire, StanzaStage, StanzaStream, StreamEvent};
use tokio_xmpp::xmlstream::Timeouts;
use tracing::Instrument;

use crate::engine::{DISCO_INFO, PING, ROSTER_NS};

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tls {
    /// Plain TCP: accepted only for a server on a loopback address (tests, local servers).
    PlainLoopbackOnly,
    /// TLS required (feature `starttls`: rustls, the system's roots, the certificate checked
    /// against the JID's domain). With a server given: STARTTLS to it (port 5222 by default).
    /// Without: the JID's domain through DNS SRV as XEP-0368 §3 says, direct TLS to the
    /// `_xmpps-client._tcp` records preferred, STARTTLS to the `_xmpp-client._tcp` ones, the
    /// domain on port 5222 with STARTTLS when it has neither (RFC 6120 §3.2.2).
    StartTls,
    /// Direct TLS (XEP-0368, RFC 7590; feature `starttls`): TLS from the first octet to the
    /// server given, which must name its port (`host:port`: there is no default; 5223 is
    /// the conventional one). The certificate is checked against the JID's domain, as for
    /// STARTTLS. Without a server, use [`Tls::StartTls`]: the domain's SRV records say where
    /// direct TLS is offered.
    DirectTls,
}

/// How to log in.
pub struct Options {
    /// The account's JID (bare, or full to ask for a resource).
    pub jid: String,
    /// The password.
    pub password: zeroize::Zeroizing<String>,
    /// The server as `host[:port]` (a name or an IP address, `[v6]` in brackets; port 5222 by
    /// default, none with [`Tls::DirectTls`]); `None`: the JID's domain, through its DNS SRV
    /// records (`_xmpps-client._tcp` for direct TLS and `_xmpp-client._tcp` for STARTTLS,
    /// XEP-0368 §3 and RFC 6120 §3.2.1; port 5222 when it has none; with [`Tls::StartTls`],
    /// whose `starttls` feature brings the resolver).
    pub server: Option<String>,
    /// Transport security.
    pub tls: Tls,
    /// The wire profile.
    pub profile: Profile,
    /// How long to wait for the server and for a contact.
    pub timeout: Duration,
    /// How long offline options stay valid.
    pub offline_lifetime: chrono::Duration,
    /// Diffie-Hellman key pairs kept ready per offered group by a background thread
    /// ([`crate::KeyPool`]); 0 generates them when a negotiation starts.
    pub key_pool_depth: usize,
    /// After this long without anything from the server, the client asks it to confirm what
    /// it has received (XEP-0198 `<r/>`, with stream management): a protected message it has
    /// not confirmed when the connection is lost for good is told ([`Event::Unconfirmed`]).
    /// Shorter tells sooner which messages arrived, at one small exchange per idle period.
    pub keepalive: Duration,
    /// The DNS server asked for the domain's SRV records when no [`Options::server`] is given
    /// (UDP, then TCP, on this address and port); `None` (the default): the system's resolver
    /// configuration (`/etc/resolv.conf`).
    pub dns: Option<std::net::SocketAddr>,
}

impl core::fmt::Debug for Options {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Options")
            .field("jid", &self.jid)
            .field("server", &self.server)
            .field("tls", &self.tls)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Options for `jid` on `server` (`host[:port]`; empty: the SRV record of the JID's domain),
    /// plain TCP on loopback, profile `Xep`, a
    /// 20-second timeout, offline options valid for a week, one pooled key pair per group.
    #[must_use]
    pub fn new(jid: &str, password: &str, server: &str) -> Self {
        Self {
            jid: jid.to_owned(),
            password: zeroize::Zeroizing::new(password.to_owned()),
            server: (!server.trim().is_empty()).then(|| server.trim().to_owned()),
            tls: Tls::PlainLoopbackOnly,
            profile: Profile::Xep,
            timeout: Duration::from_secs(20),
            offline_lifetime: chrono::Duration::days(7),
            key_pool_depth: 1,
            keepalive: Duration::from_secs(20),
            dns: None,
        }
    }

    /// The stream's timeouts: [`Options::keepalive`] of silence before the server is asked to
    /// confirm, then tokio-xmpp's default before the stream counts as dead.
    fn timeouts(&self) -> Timeouts {
        Timeouts { read_timeout: self.keepalive.max(Duration::from_secs(1)), ..Timeouts::default() }
    }
}

/// How a message went out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Inside an online session (with the SAS of its negotiation, when it had one).
    Online {
        /// The short authentication string.
        sas: Option<String>,
    },
    /// Inside an offline session (the contact reads it on return).
    Offline,
}

/// The most protected messages awaiting the server's confirmation that are remembered (the
/// oldest are forgotten beyond: a server without stream management confirms none).
const UNCONFIRMED_MAX: usize = 4096;

/// A protected message sent, awaiting the server's confirmation.
struct Unconfirmed {
    token: tokio_xmpp::stanzastream::StanzaToken,
    peer: Jid,
    id: String,
    /// Not confirmed when the connection was lost (or sent while it was down): whatever is
    /// confirmed later is a copy sent on a new stream, where its session may be gone.
    lost: bool,
}

impl Unconfirmed {
    fn confirmed(&self) -> bool {
        matches!(self.token.state(), tokio_xmpp::stanzastream::StanzaState::Acked { .. })
    }
}

/// How long a connection established again must last before the application is told
/// ([`Event::Reconnected`]): ejabberd, while it stops, still accepts a login and drops it about
/// a second later, and two reconnections in a row read as one.
const STABLE: Duration = Duration::from_secs(3);

/// A reconnection not told yet: the application is told after [`STABLE`] without a new loss.
struct Settling {
    /// When it is told (`None`: lost again meanwhile).
    at: Option<tokio::time::Instant>,
    /// Our full JID on the latest stream.
    jid: Jid,
    /// No stream of this outage was reset: nothing was lost.
    resumed: bool,
    /// The events since the loss (what the reset ended, stanzas of the new stream), told after
    /// the reconnection, in order.
    held: Vec<Event>,
}

/// What [`Client::recv`] got.
enum Got {
    /// A stanza from the server.
    Stanza(Element),
    /// A reconnection was told: events were queued.
    Changed,
    /// The connection was lost; `told`: the first loss of an outage, which the application is
    /// told of (a loss before the reconnection was told is the same outage).
    Lost {
        /// Whether the application is to be told.
        told: bool,
    },
}

/// The error of a request or a send while the connection is lost.
fn connection_lost() -> Error {
    Error::Disconnected(boxed(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the connection to the server is lost (the client reconnects by itself)",
    )))
}

/// A logged-in account.
pub struct Client {
    xmpp: StanzaStream,
    /// XEP-0198 acknowledgements held to the stanzas handled ([`crate::smfix::AckGate`]).
    gate: std::sync::Arc<crate::smfix::AckGate>,
    /// What came from the stream before it was read (looked at by [`Client::peek`]).
    inbox: VecDeque<Wire>,
    /// The connection is lost (tokio-xmpp reconnects by itself).
    down: bool,
    /// A reconnection not told yet.
    settling: Option<Settling>,
    /// The last stanza sent (all before it were sent first): awaited when leaving.
    last_token: Option<tokio_xmpp::stanzastream::StanzaToken>,
    engine: Engine,
    account: Account,
    me: Jid,
    timeout: Duration,
    lifetime: chrono::Duration,
    events: VecDeque<Event>,
    results: HashMap<String, Element>,
    /// The id of the request [`Client::request`] waits for: only its answer is kept in
    /// `results` (an answer nobody asked for is dropped, so `results` stays bounded).
    awaited: Option<String>,
    rng: Rng,
    recorded: Option<Vec<Element>>,
    /// Protected messages sent in online sessions that the server has not confirmed yet
    /// (XEP-0198 acknowledgements), oldest first, at most [`UNCONFIRMED_MAX`].
    unconfirmed: VecDeque<Unconfirmed>,
    /// Whether the server confirmed one since the stream began: it does stream management,
    /// so an unconfirmed message is one that may be lost.
    confirms: bool,
    /// The id of the last protected message sent.
    last_sent: Option<String>,
    /// Contacts we asked to see the presence of (roster `ask='subscribe'`, or our request in
    /// this run) that have not approved (nor refused) yet.
    asked: std::collections::HashSet<BareJid>,
    /// Every item of the roster (any subscription, at most [`crate::engine::ROSTER_MAX`]) as
    /// the last roster read and the pushes since say; `None` before the roster was read.
    listed: Option<std::collections::HashSet<BareJid>>,
    /// Contacts for whom the server answered our presence with an error (no such domain or
    /// account, a server that cannot be reached), with its condition.
    presence_errors: HashMap<BareJid, String>,
}

/// The most contacts [`Client::asked`] and [`Client::presence_error`] remember.
const SUBSCRIPTIONS_MAX: usize = 4096;

/// How long [`Client::settle`] waits, after the server's answer to its ping, for the presence
/// of the roster's contacts (RFC 6121 §4.3.2 lets the server answer probes when it likes; a
/// server may also say nothing of a contact that is offline).
pub const PRESENCE_GRACE: Duration = Duration::from_secs(2);

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client").field("me", &self.me).finish_non_exhaustive()
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// The port of XMPP client connections (RFC 6120 §14.7).
const CLIENT_PORT: u16 = 5222;

/// `host[:port]` split: an IP address (v6 in brackets, or bare without a port) or a DNS name,
/// the port 5222 when absent.
fn split_server(server: &str) -> Option<(String, u16)> {
    split_host_port(server).map(|(h, p)| (h, p.unwrap_or(CLIENT_PORT)))
}

/// `host[:port]` split, the port `None` when absent.
fn split_host_port(server: &str) -> Option<(String, Option<u16>)> {
    let server = server.trim();
    if let Ok(ip) = server.parse::<std::net::IpAddr>() {
        return Some((ip.to_string(), None));
    }
    if let Ok(sa) = server.parse::<std::net::SocketAddr>() {
        return Some((sa.ip().to_string(), Some(sa.port())));
    }
    if let Some(v6) = server.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().ok().map(|a| (a.to_string(), None));
    }
    let (host, port) = match server.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok().filter(|p| *p != 0)?)),
        None => (server, None),
    };
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_alphanumeric() || c == '-'));
    name_ok.then(|| (host.to_owned(), port))
}

/// Where to connect over TLS to the server given: an address, or a name the resolver looks
/// up; its port, or `default` (none for direct TLS).
#[cfg(feature = "starttls")]
fn dns_config(server: &str, default: Option<u16>) -> Result<DnsConfig, Error> {
    let (host, port) = split_host_port(server)
        .ok_or_else(|| Error::Config(format!("not a server address (host[:port]): {server}")))?;
    let port = port.or(default).ok_or_else(|| {
        Error::Config(format!(
            "direct TLS needs the server's port (host:port; 5223 is the conventional one): {server}"
        ))
    })?;
    Ok(match host.parse::<std::net::IpAddr>() {
        Ok(ip) => DnsConfig::addr(&std::net::SocketAddr::new(ip, port).to_string()),
        Err(_) => DnsConfig::no_srv(&host, port),
    })
}

fn to_stanza(e: Element) -> Result<Stanza, Error> {
    Stanza::try_from(e).map_err(|e| Error::Protocol(format!("cannot send this stanza: {e}")))
}

fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> Option<crate::BoxError> {
    Some(Box::new(e))
}

/// What [`Client::negotiate`] returns for the event that ended the negotiation: the SAS, or
/// the error a caller can act on (a peer's error answer is its refusal).
fn negotiation_outcome(e: Event) -> Result<Option<String>, Error> {
    match e {
        Event::Negotiated { sas, .. } => Ok(sas.map(|s| s.to_string())),
        Event::Failed { failure: crate::Failure::Negotiation(e), .. } => Err(Error::Negotiation(e)),
        // The peer answered the request with an error stanza: it refused the session.
        Event::Failed { failure: crate::Failure::PeerError { condition, fields }, .. } => {
            Err(Error::Negotiation(esession_negotiate::Error::Rejected { condition, fields }))
        }
        Event::Failed { failure: crate::Failure::Expired, .. } => Err(Error::Timeout("the negotiation")),
        Event::Failed { failure: crate::Failure::ConnectionLost, .. } => Err(connection_lost()),
        Event::Failed { failure, .. } => {
            Err(Error::Server { action: "the negotiation".into(), condition: failure.to_string() })
        }
        _ => Err(Error::Protocol("unexpected outcome of the negotiation".into())),
    }
}

/// Logs in once without binding, to tell a wrong password and an unreachable server apart
/// (the client below reconnects forever on either).
async fn preflight<C: ServerConnector>(
    connector: &C,
    jid: &tokio_xmpp::jid::Jid,
    opts: &Options,
) -> Result<(), Error> {
    let t = Timeouts::default();
    let server = opts.server.clone().unwrap_or_else(|| jid.domain().to_string());
    let connect = connector.connect(jid, "jabber:client", t);
    let (stream, binding) = tokio::time::timeout(opts.timeout, connect)
        .await
        .map_err(|_| Error::Unreachable { server: server.clone(), source: None })?
        .map_err(|e| Error::Unreachable { server: server.clone(), source: boxed(e) })?;
    let (features, stream) = stream
        .recv_features()
        .await
        .map_err(|e| Error::Unreachable { server: server.clone(), source: boxed(e) })?;
    let node = jid.node().map(|n| n.as_str().to_owned()).unwrap_or_default();
    let bound = !matches!(binding, sasl::common::ChannelBinding::None);
    tracing::debug!(channel_binding = bound, "login attempt");
    let creds = sasl::common::Credentials::default()
        .with_username(node)
        .with_password(opts.password.as_str())
        .with_channel_binding(binding);
    match tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds).await {
        Ok(_) => Ok(()),
        Err(tokio_xmpp::Error::Auth(e)) => Err(Error::Auth(boxed(e))),
        Err(e) => Err(Error::Unreachable { server, source: boxed(e) }),
    }
}

/// A connector whose streams offer no channel binding to SASL: SCRAM without `-PLUS`, for a
/// server that advertises `-PLUS` but refuses the binding tokio-xmpp computes over TLS 1.3
/// (`tls-exporter`, RFC 9266; ejabberd before 23.04 knows only `tls-unique`). The TLS
/// certificate check is unchanged.
#[derive(Clone, Debug)]
struct Unbound<C>(C);

impl<C: ServerConnector + Sync> ServerConnector for Unbound<C> {
    type Stream = C::Stream;

    fn connect(
        &self,
        jid: &tokio_xmpp::jid::Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> impl core::future::Future<
        Output = Result<
            (tokio_xmpp::xmlstream::PendingFeaturesRecv<Self::Stream>, sasl::common::ChannelBinding),
            tokio_xmpp::Error,
        >,
    > + Send {
        let f = self.0.connect(jid, ns, timeouts);
        async move { f.await.map(|(s, _)| (s, sasl::common::ChannelBinding::None)) }
    }
}

/// The preflight login, then the reconnecting client on the same connector. A login refused
/// over TLS with channel binding is tried once more without (see [`Unbound`]); a wrong
/// password fails both.
async fn login<C: ServerConnector + Sync>(
    connector: C,
    jid: &tokio_xmpp::jid::Jid,
    opts: &Options,
) -> Result<StanzaStream, Error> {
    // The stanza stream itself (tokio-xmpp's `Client` hides the loss of a connection): the
    // client tells the loss, and sends nothing that a lost connection would lose untold.
    fn stream<C: ServerConnector>(c: C, jid: &tokio_xmpp::jid::Jid, opts: &Options) -> StanzaStream {
        StanzaStream::new_c2s(c, jid.clone(), opts.password.as_str().to_owned(), opts.timeouts(), 16)
    }
    match preflight(&connector, jid, opts).await {
        Ok(()) => Ok(stream(connector, jid, opts)),
        Err(Error::Auth(first)) if matches!(opts.tls, Tls::StartTls | Tls::DirectTls) => {
            tracing::info!("login refused over TLS: trying once more without channel binding");
            let unbound = Unbound(connector);
            match preflight(&unbound, jid, opts).await {
                Ok(()) => Ok(stream(unbound, jid, opts)),
                Err(Error::Auth(_)) => Err(Error::Auth(first)),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

impl Client {
    /// Logs in; if offline options were published before, withdraws them, announces presence
    /// (the order of XEP-0187 §3.4, which the engine gives), and accepts the offline sessions
    /// the server stored while we were away as they arrive.
    ///
    /// # Errors
    /// [`Error::Unreachable`], [`Error::Auth`], [`Error::Timeout`], [`Error::BadJid`],
    /// [`Error::Config`] for plain TCP to a remote server; store errors.
    ///
    /// The configuration is `Config::new(opts.profile)` with the account's identity key; to
    /// give another, use [`Client::builder`] (this is `ClientBuilder::from(opts).connect(account)`).
    pub async fn connect(opts: Options, account: Account) -> Result<Self, Error> {
        ClientBuilder::from(opts).connect(account).await
    }

    /// A builder: the options of [`Options`] and the negotiation [`Config`](crate::Config) (algorithms,
    /// logging, identities, other shared secret); see [`ClientBuilder`].
    #[must_use]
    pub fn builder(jid: &str, password: &str) -> ClientBuilder {
        ClientBuilder::new(jid, password)
    }

    /// Logs in and runs `engine` (made by [`ClientBuilder::engine`] for `account`): what
    /// [`ClientBuilder::connect`] runs, in a `tracing` span `esession.connect`.
    pub(crate) async fn open(opts: Options, engine: Engine, account: Account) -> Result<Self, Error> {
        let me = parse_jid(&opts.jid)?;
        if me.node().is_none() {
            return Err(Error::BadJid { jid: opts.jid.clone(), source: None });
        }
        let server = opts.server.clone().unwrap_or_else(|| me.domain().as_str().to_owned());
        let span = tracing::info_span!("esession.connect", account = %me.to_bare(), server = %server);
        let r = Self::open_as(me, opts, engine, account).instrument(span.clone()).await;
        if let Err(e) = &r {
            span.in_scope(|| tracing::warn!(error = %e, "connection failed"));
        }
        r
    }

    async fn open_as(me: Jid, opts: Options, mut engine: Engine, account: Account) -> Result<Self, Error> {
        let jid = tokio_xmpp::jid::Jid::new(me.as_str()).map_err(|e| Error::bad_jid(&opts.jid, e))?;
        let domain = me.domain().as_str().to_owned();
        let shown = opts.server.clone().unwrap_or_else(|| domain.clone());
        tracing::debug!(tls = ?opts.tls, "connecting");
        let gate = std::sync::Arc::new(crate::smfix::AckGate::default());
        let g = Some(gate.clone());
        let xmpp = match opts.tls {
            Tls::PlainLoopbackOnly => {
                // A name is resolved by the resolver: only an address, or `localhost`, is known
                // to stay on this machine. Without a server, the JID's domain must be one.
                let (host, port) = match opts.server.as_deref() {
                    Some(server) => split_server(server).ok_or_else(|| {
                        Error::Config(format!("not a server address (host[:port]): {server}"))
                    })?,
                    None => (domain.clone(), CLIENT_PORT),
                };
                if !is_loopback(&host) {
                    return Err(Error::Config(format!(
                        "plain TCP is only allowed to a loopback server, not {shown}; use STARTTLS"
                    )));
                }
                let ip = host.parse().unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
                let dns = DnsConfig::addr(&std::net::SocketAddr::new(ip, port).to_string());
                login(crate::nodelay::Plain(dns, g), &jid, &opts).await?
            }
            // The certificate must name the JID's domain; roots are the system's
            // (SSL_CERT_FILE is honoured).
            #[cfg(feature = "starttls")]
            Tls::StartTls => match opts.server.as_deref() {
                Some(server) => {
                    let connector = crate::nodelay::StartTls(dns_config(server, Some(CLIENT_PORT))?, g);
                    login(connector, &jid, &opts).await?
                }
                None => login(crate::nodelay::Srv(g, opts.dns), &jid, &opts).await?,
            },
            #[cfg(feature = "starttls")]
            Tls::DirectTls => {
                let server = opts.server.as_deref().ok_or_else(|| {
                    Error::Config(
                        "direct TLS needs a server (host:port); without one, STARTTLS looks up the \
                         domain's SRV records, direct TLS included"
                            .into(),
                    )
                })?;
                login(crate::nodelay::DirectTls(dns_config(server, None)?, g), &jid, &opts).await?
            }
            #[cfg(not(feature = "starttls"))]
            Tls::StartTls | Tls::DirectTls => {
                return Err(Error::Config("built without the `starttls` feature".into()));
            }
        };
        crate::builder::attach_pool(&mut engine, opts.key_pool_depth)?;
        let mut c = Self {
            xmpp,
            gate,
            inbox: VecDeque::new(),
            down: false,
            settling: None,
            last_token: None,
            engine,
            account,
            me,
            timeout: opts.timeout,
            lifetime: opts.offline_lifetime,
            events: VecDeque::new(),
            results: HashMap::new(),
            awaited: None,
            rng: os_rng(),
            recorded: None,
            unconfirmed: VecDeque::new(),
            confirms: false,
            last_sent: None,
            asked: std::collections::HashSet::new(),
            listed: None,
            presence_errors: HashMap::new(),
        };
        let deadline = tokio::time::Instant::now() + c.timeout;
        loop {
            match tokio::time::timeout_at(deadline, c.xmpp.next()).await {
                Err(_) => return Err(Error::Timeout("login")),
                Ok(None) => return Err(Error::Disconnected(None)),
                Ok(Some(Wire::Stream(StreamEvent::Reset { bound_jid, .. }))) => {
                    c.me = parse_jid(&bound_jid.to_string())?;
                    c.engine.set_account(&c.me);
                    c.gate.reset();
                    tracing::info!(account = %c.me.to_bare(), "online");
                    break;
                }
                Ok(Some(Wire::Stream(StreamEvent::Suspended))) => return Err(connection_lost()),
                Ok(Some(_)) => {}
            }
        }
        // What the last process delivered and the application did not acknowledge comes first.
        c.events.extend(c.engine.unacknowledged()?);
        c.come_back().await?;
        Ok(c)
    }

    /// The application has done with the offline message `id` ([`Event::Message`]'s `id`): it
    /// is forgotten and never delivered again; until then it is delivered again after every
    /// restart ([`Engine::unacknowledged`]).
    ///
    /// # Errors
    /// The account's inbox could not be updated.
    pub fn ack(&mut self, id: &crate::engine::MessageId) -> Result<(), Error> {
        self.engine.ack(id)
    }

    /// Our full JID.
    #[must_use]
    pub fn jid(&self) -> &Jid {
        &self.me
    }

    /// The engine (sessions, trust store).
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, mutably (for [`Engine::confirm_sas`] and the like).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The account (its key associations, identity, data directory).
    #[must_use]
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// What trust on first use says of the key `peer` proved in the session of `thread`, a
    /// first key pinned; see [`trust_on_first_use`]. With
    /// [`ClientBuilder::trust_on_first_use`] on, the engine does this itself when a session
    /// opens, before the application sees it (this then answers [`FirstUse::Known`]).
    ///
    /// # Errors
    /// The account's store cannot be written.
    pub fn trust_on_first_use(&mut self, peer: &BareJid, thread: &str) -> Result<Option<FirstUse>, Error> {
        trust_on_first_use(&self.account, &mut self.engine, peer, thread)
    }

    /// Processes what the server has sent so far and waits for the presence of our contacts:
    /// reads the roster, pings the server (everything before its answer is processed), then
    /// waits until a presence (available or not) of every roster contact whose presence we
    /// receive has come, at most [`PRESENCE_GRACE`] after the ping's answer. The answer to a
    /// ping says nothing of presence (a server answers presence probes when it likes: ejabberd
    /// often after the ping), so a contact is "unknown yet" ([`Client::presence_known`]) rather
    /// than offline until its presence comes.
    ///
    /// # Errors
    /// The connection is lost; no answer in time.
    pub async fn settle(&mut self) -> Result<(), Error> {
        let roster = self.iq_element("get", None, Element::bare("query", ROSTER_NS));
        let r = self.request(roster).await?;
        // Presence that came before the roster: in events the application has not read yet.
        let heard: Vec<BareJid> = self
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Presence { peer, .. } => Some(peer.to_bare()),
                _ => None,
            })
            .collect();
        self.engine.roster_result(&r, &heard);
        // The whole roster, read again: what it lists now (pushes add and remove after it).
        if r.attr("type") == Some("result") {
            self.listed = Some(std::collections::HashSet::new());
        }
        self.roster_items(&r);
        esession_forms::xml::dispose(r);
        let ping = self.iq_element("get", None, Element::bare("ping", PING));
        self.request(ping).await?;
        let deadline = tokio::time::Instant::now() + PRESENCE_GRACE.min(self.timeout);
        while self.engine.awaiting_presence() {
            match self.recv(deadline).await {
                Ok(Got::Stanza(s)) => self.process(s).await?,
                Ok(Got::Changed) => {}
                Ok(Got::Lost { .. }) => return Err(connection_lost()),
                Err(Error::Timeout(_)) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether `peer`'s presence is known: `Some(true)` available, `Some(false)` a presence
    /// of it said it is away (or it is in the roster and answered nothing within the grace),
    /// `None` unknown: not a contact whose presence we receive, and no presence came.
    #[must_use]
    pub fn presence_known(&self, peer: &BareJid) -> Option<bool> {
        self.engine.presence_known(peer)
    }

    /// The roster's contacts whose presence we receive (read by [`Client::settle`]), sorted.
    #[must_use]
    pub fn watched(&self) -> Vec<BareJid> {
        self.engine.watched()
    }

    /// Whether the roster (read by [`Client::settle`]) says we receive `peer`'s presence
    /// (subscription `to` or `both`).
    #[must_use]
    pub fn watches(&self, peer: &BareJid) -> bool {
        self.engine.watches(peer)
    }

    /// Whether we asked to see `peer`'s presence ([`Client::subscribe`], or a request the roster
    /// read at login shows pending) and it has neither approved nor refused yet: its presence
    /// is unknown (not "offline") until it does.
    #[must_use]
    pub fn asked(&self, peer: &BareJid) -> bool {
        self.asked.contains(peer) && !self.engine.watches(peer)
    }

    /// Whether `peer` is in the account's roster (any subscription, or only asked): `None`
    /// before the roster was read ([`Client::settle`]) or when it holds more than
    /// [`crate::engine::ROSTER_MAX`] items, else as the roster and its pushes say.
    #[must_use]
    pub fn in_roster(&self, peer: &BareJid) -> Option<bool> {
        self.listed.as_ref().map(|l| l.contains(peer))
    }

    /// The contacts [`Client::asked`] says we asked and that have not answered, sorted.
    #[must_use]
    pub fn pending_requests(&self) -> Vec<BareJid> {
        let mut v: Vec<BareJid> = self.asked.iter().filter(|b| !self.engine.watches(b)).cloned().collect();
        v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        v
    }

    /// The error condition the server answered our presence to `peer` with (e.g.
    /// `remote-server-not-found`, `item-not-found`: no such domain or account), if it did.
    #[must_use]
    pub fn presence_error(&self, peer: &BareJid) -> Option<&str> {
        self.presence_errors.get(peer).map(String::as_str)
    }

    /// What a roster (a result, or a push) says of our requests: an item with `ask='subscribe'`
    /// whose presence we do not receive is a pending request; one we receive is approved.
    fn roster_items(&mut self, iq: &Element) {
        let Some(q) = iq.get_child("query", ROSTER_NS) else { return };
        for item in q.children().filter(|c| c.is("item", ROSTER_NS)).take(crate::engine::ROSTER_MAX) {
            let Some(jid) = item.attr("jid").and_then(|j| parse_jid(j).ok()).map(|j| j.to_bare()) else {
                continue;
            };
            let sub = item.attr("subscription").unwrap_or("none");
            if let Some(listed) = self.listed.as_mut() {
                if sub == "remove" {
                    listed.remove(&jid);
                } else if listed.len() < crate::engine::ROSTER_MAX || listed.contains(&jid) {
                    listed.insert(jid.clone());
                } else {
                    // Beyond the bound the roster is not known whole: no answer rather than a
                    // false "not listed".
                    self.listed = None;
                }
            }
            if matches!(sub, "to" | "both" | "remove") || item.attr("ask") != Some("subscribe") {
                self.asked.remove(&jid);
            } else if self.asked.len() < SUBSCRIPTIONS_MAX {
                self.asked.insert(jid);
            }
        }
    }

    /// What a presence stanza says of our subscription requests, before the engine reads it:
    /// an answer (`subscribed`, `unsubscribed`), or the server's error for the address.
    fn presence_answer(&mut self, s: &Element) {
        if s.name() != "presence" {
            return;
        }
        let Some(from) = s.attr("from").and_then(|f| parse_jid(f).ok()).map(|j| j.to_bare()) else {
            return;
        };
        match s.attr("type") {
            Some("subscribed" | "unsubscribed") => {
                self.asked.remove(&from);
            }
            Some("error") => {
                let condition = s
                    .get_child("error", "jabber:client")
                    .and_then(|e| e.children().find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas"))
                    .map_or_else(|| "undefined-condition".to_owned(), |c| c.name().to_owned());
                if self.presence_errors.len() < SUBSCRIPTIONS_MAX || self.presence_errors.contains_key(&from)
                {
                    self.presence_errors.insert(from, condition);
                }
            }
            // A presence of it came: the address answers.
            None | Some("unavailable") => {
                self.presence_errors.remove(&from);
            }
            _ => {}
        }
    }

    /// Announces presence; with offline secrets kept, the engine first withdraws the
    /// subscribers' options and keeps the secrets for the starts the server stored.
    async fn come_back(&mut self) -> Result<(), Error> {
        let step = come_back_from(&self.account, &mut self.engine, chrono::Utc::now())?;
        self.apply(step).await
    }

    /// Keeps a copy of every stanza sent from now on (wire form, already encrypted), for
    /// diagnostics and tests; [`Client::take_recorded`] hands them over.
    pub fn record_outgoing(&mut self) {
        self.recorded.get_or_insert_with(Vec::new);
    }

    /// The stanzas recorded since the last call.
    pub fn take_recorded(&mut self) -> Vec<Element> {
        self.recorded.as_mut().map(std::mem::take).unwrap_or_default()
    }

    async fn send(&mut self, mut e: Element) -> Result<(), Error> {
        // A protected message of an online session is followed until the server confirms it:
        // if the stream is lost before and cannot be resumed, the application is told
        // (Event::Unconfirmed). Ours carry an id, so that it can say which.
        let protected = e.name() == "message"
            && e.attr("type") != Some("error")
            && e.get_child("c", esession_stanza::NS).is_some()
            && e.attr("to").and_then(|t| parse_jid(t).ok()).is_some_and(|to| {
                self.engine.session_peer(&to.to_bare()).is_some_and(|p| p.to_bare() == to.to_bare())
            });
        // Every stanza carries an id (as tokio-xmpp's client gave them); ours name a protected
        // message in Event::Unconfirmed.
        if e.attr("id").is_none() {
            set_attr(&mut e, "id", &crate::engine::new_thread(&mut self.rng));
        }
        let tracked = if protected {
            e.attr("to").and_then(|t| parse_jid(t).ok()).zip(e.attr("id").map(str::to_owned))
        } else {
            None
        };
        if let Some(r) = self.recorded.as_mut() {
            r.push(e.clone());
        }
        let s = to_stanza(e)?;
        // Queued: sent as soon as the stream is up (a connection being restored takes it).
        let token = self.xmpp.send(Box::new(s)).await;
        self.last_token = Some(token.clone());
        while self.unconfirmed.front().is_some_and(Unconfirmed::confirmed) {
            self.unconfirmed.pop_front();
            self.confirms = true;
        }
        if let Some((peer, id)) = tracked {
            self.last_sent = Some(id.clone());
            if self.unconfirmed.len() >= UNCONFIRMED_MAX {
                self.unconfirmed.pop_front();
            }
            self.unconfirmed.push_back(Unconfirmed { token, peer, id, lost: self.down });
        }
        Ok(())
    }

    /// The id of the last protected message this client sent (for [`Event::Unconfirmed`]).
    #[must_use]
    pub fn last_sent_id(&self) -> Option<&str> {
        self.last_sent.as_deref()
    }

    /// Sends what a step of the engine produced, in order, and queues its events (answers to
    /// our IQs are kept for [`Client::request`]).
    async fn apply(&mut self, step: crate::Step) -> Result<(), Error> {
        for s in step.send {
            self.send(s).await?;
        }
        for e in step.events {
            match e {
                Event::IqResult { stanza } => {
                    let id = stanza.attr("id").unwrap_or_default();
                    if self.awaited.as_deref() == Some(id) {
                        self.results.insert(id.to_owned(), stanza);
                    } else {
                        tracing::debug!("an IQ answer nobody waits for: dropped");
                        esession_forms::xml::dispose(stanza);
                    }
                }
                other => match self.settling.as_mut() {
                    Some(s) => s.held.push(other),
                    None => self.events.push_back(other),
                },
            }
        }
        Ok(())
    }

    /// Sends a stanza in clear, as the caller explicitly asks (never used for content that a
    /// session should protect).
    ///
    /// # Errors
    /// The connection is lost.
    pub async fn send_clear(&mut self, stanza: Element) -> Result<(), Error> {
        self.send(stanza).await
    }

    /// Sends a stanza protected by the session with its addressee.
    ///
    /// # Errors
    /// [`Error::NotProtected`] without a session (nothing is sent); [`Error::Disconnected`]
    /// while the connection is lost or its reconnection not yet told (nothing is sent).
    pub async fn send_protected(&mut self, stanza: &Element) -> Result<(), Error> {
        // As `send_text`: nothing goes out in a session until the application was told of a
        // reconnection ([`Client::unsettled`]).
        if self.unsettled() {
            return Err(connection_lost());
        }
        let w = self.engine.protect(stanza, EncryptOptions::default())?;
        self.send(w).await
    }

    fn iq_element(&mut self, kind: &str, to: Option<&str>, payload: Element) -> Element {
        let mut iq = Element::builder("iq", "jabber:client").append(payload).build();
        set_attr(&mut iq, "type", kind);
        set_attr(&mut iq, "id", &crate::engine::new_thread(&mut self.rng));
        if let Some(t) = to {
            set_attr(&mut iq, "to", t);
        }
        iq
    }

    /// The next stanza from the server, before `deadline`, or a change of the connection:
    /// a loss ([`Got::Lost`]), a reconnection told ([`Got::Changed`]; a reconnection is handled
    /// here, told after [`STABLE`]).
    async fn recv(&mut self, deadline: tokio::time::Instant) -> Result<Got, Error> {
        loop {
            let wire = match self.inbox.pop_front() {
                Some(w) => w,
                None => {
                    let tell = self.settling.as_ref().and_then(|s| s.at).filter(|at| *at < deadline);
                    match tokio::time::timeout_at(tell.unwrap_or(deadline), self.xmpp.next()).await {
                        Err(_) if tell.is_some() => {
                            self.settled();
                            return Ok(Got::Changed);
                        }
                        Err(_) => return Err(Error::Timeout("server")),
                        Ok(None) => {
                            tracing::warn!(account = %self.me.to_bare(), "disconnected: the stream ended");
                            return Err(Error::Disconnected(None));
                        }
                        Ok(Some(w)) => w,
                    }
                }
            };
            match wire {
                Wire::Stanza(s) => {
                    let mut e = Element::from(s);
                    // An answer without `from` is from our account (RFC 6120 §8.1.2.1), as
                    // tokio-xmpp's client said it.
                    if e.name() == "iq"
                        && e.attr("from").is_none()
                        && matches!(e.attr("type"), Some("result" | "error"))
                    {
                        let me = self.me.to_bare();
                        set_attr(&mut e, "from", me.as_str());
                    }
                    return Ok(Got::Stanza(e));
                }
                Wire::Stream(StreamEvent::Suspended) => return Ok(Got::Lost { told: self.lost() }),
                Wire::Stream(StreamEvent::Resumed) => self.resumed(),
                Wire::Stream(StreamEvent::Reset { bound_jid, .. }) => self.reconnected(&bound_jid).await?,
            }
        }
    }

    /// What the stream brought and nobody read yet, read without waiting: whether the
    /// connection changed meanwhile (lost, or established again: then nothing may be sent in
    /// a session that the change may have ended before the client handles it).
    fn peek(&mut self) -> bool {
        use futures_util::FutureExt;
        while self.inbox.len() < 256
            && let Some(Some(w)) = self.xmpp.next().now_or_never()
        {
            self.inbox.push_back(w);
        }
        self.down || self.inbox.iter().any(|w| matches!(w, Wire::Stream(_)))
    }

    /// The connection was lost: what the server had not confirmed is marked (a later
    /// confirmation is of a copy on a new stream). Returns whether the application is told:
    /// not when it was not told yet of the last reconnection (the same outage).
    fn lost(&mut self) -> bool {
        tracing::warn!(account = %self.me.to_bare(), "connection lost: reconnecting");
        self.down = true;
        for u in &mut self.unconfirmed {
            u.lost |= !u.confirmed();
        }
        match self.settling.as_mut() {
            Some(s) => {
                s.at = None;
                false
            }
            None => true,
        }
    }

    /// The stream was resumed (XEP-0198): nothing was lost; tokio-xmpp sends again what the
    /// server had not confirmed. Told after [`STABLE`].
    fn resumed(&mut self) {
        tracing::info!(account = %self.me.to_bare(), "online again (resumed)");
        self.down = false;
        for u in &mut self.unconfirmed {
            u.lost = false;
        }
        let me = self.me.clone();
        let s = self.settling.get_or_insert_with(|| Settling {
            at: None,
            jid: me,
            resumed: true,
            held: Vec::new(),
        });
        s.at = Some(tokio::time::Instant::now() + STABLE);
    }

    /// A reconnection lasted [`STABLE`]: the application is told ([`Event::Reconnected`]), then
    /// what happened since the loss.
    fn settled(&mut self) {
        if let Some(s) = self.settling.take() {
            self.events.push_back(Event::Reconnected { jid: s.jid, resumed: s.resumed });
            self.events.extend(s.held);
        }
    }

    /// Sends an IQ and waits for its answer, processing everything else that arrives.
    ///
    /// Whether nothing may go out in a session now: the connection is lost, or changed before
    /// the client handled it ([`Client::peek`]), or it was established again and the
    /// application has not been told yet ([`Event::Reconnected`] comes after [`STABLE`]). Until
    /// it is told, an application has told its user that what is typed is not sent (and the
    /// sessions the reset ended are told after that event): a line sent meanwhile would
    /// contradict it, and its new session would be told before the reconnection. A
    /// reconnection whose time has come is told now (queued first), and sending may go on.
    fn unsettled(&mut self) -> bool {
        if self.peek() {
            return true;
        }
        match self.settling.as_ref().map(|s| s.at) {
            None => false,
            Some(Some(at)) if at <= tokio::time::Instant::now() => {
                self.settled();
                false
            }
            Some(_) => true,
        }
    }

    /// The connection lost (before, or while waiting): [`Error::Disconnected`] at once; an
    /// answer sent on a lost stream is lost with it.
    async fn request(&mut self, iq: Element) -> Result<Element, Error> {
        if self.peek() {
            return Err(connection_lost());
        }
        let id = iq.attr("id").unwrap_or_default().to_owned();
        let outer = self.awaited.replace(id.clone());
        let r = self.request_sent(iq, &id).await;
        self.results.remove(&id);
        self.awaited = outer;
        r
    }

    /// [`Client::request`] once `id` is awaited.
    async fn request_sent(&mut self, iq: Element, id: &str) -> Result<Element, Error> {
        self.send(iq).await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            if let Some(r) = self.results.remove(id) {
                return Ok(r);
            }
            match self.recv(deadline).await? {
                Got::Stanza(s) => self.process(s).await?,
                Got::Changed => {}
                Got::Lost { .. } => return Err(connection_lost()),
            }
        }
    }

    /// tokio-xmpp connected again by itself (with backoff: 1 s, doubled up to 30 s) after the
    /// connection was lost, and the stream was not resumed (the server restarted, or forgot
    /// the stream): the server announced our old resource unavailable, so online sessions and
    /// negotiations end and presence is announced again ([`Engine::connection_reset`];
    /// contacts' presence comes back with it); the new resource is ours. The application is
    /// told after [`STABLE`] ([`Event::Reconnected`], then what the server had not confirmed,
    /// then what ended), once for an outage with several reconnections.
    async fn reconnected(&mut self, bound: &tokio_xmpp::jid::Jid) -> Result<(), Error> {
        let jid = parse_jid(&bound.to_string())?;
        // A new stream-management session: its acknowledgements count from 0.
        self.gate.reset();
        tracing::info!(account = %jid.to_bare(), "online again (reconnected, not resumed)");
        self.down = false;
        // What the server had not confirmed on the lost stream may be lost with it, and its
        // session is gone (a confirmation on the new stream is of a copy the contact cannot
        // read). Told only where the server confirms (stream management).
        let confirms = self.confirms || self.unconfirmed.iter().any(Unconfirmed::confirmed);
        let mut told = Vec::new();
        for u in std::mem::take(&mut self.unconfirmed) {
            if confirms && (u.lost || !u.confirmed()) {
                told.push(Event::Unconfirmed { peer: u.peer, id: u.id });
            }
        }
        let s = self.settling.get_or_insert_with(|| Settling {
            at: None,
            jid: jid.clone(),
            resumed: false,
            held: Vec::new(),
        });
        s.jid = jid.clone();
        s.resumed = false;
        s.at = Some(tokio::time::Instant::now() + STABLE);
        s.held.extend(told);
        self.confirms = false;
        self.me = jid;
        self.engine.set_account(&self.me);
        // The engine ends what the reset ended, then announces our presence again.
        let step = self.engine.connection_reset(chrono::Utc::now());
        self.apply(step).await
    }

    /// Hands one stanza from the server to the engine.
    async fn process(&mut self, s: Element) -> Result<(), Error> {
        self.presence_answer(&s);
        // A roster push comes from our own account (RFC 6121 §2.1.6).
        if s.name() == "iq"
            && s.attr("type") == Some("set")
            && s.attr("from").is_none_or(|f| {
                parse_jid(f).is_ok_and(|j| j.resource().is_none() && j.to_bare() == self.me.to_bare())
            })
        {
            self.roster_items(&s);
        }
        let step = self.engine.handle(chrono::Utc::now(), &s);
        // Handled (offline content kept in the inbox): the server may now forget it, and
        // what tokio-xmpp dropped before it unparsed (`AckGate::handled`).
        self.gate.handled(s.name(), s.attr("id"));
        // Stanzas from the network may be deep: dropped without recursion.
        esession_forms::xml::dispose(s);
        self.apply(step).await
    }

    /// The next event (waits for the server as long as it takes).
    ///
    /// # Errors
    /// The connection is lost.
    ///
    /// [`Error::Disconnected`] with a cause when the connection is lost: the client reconnects
    /// by itself (call again), and tells [`Event::Reconnected`] once it is back and has lasted
    /// a few seconds; an outage is told once, whatever the reconnections it took. Without a
    /// cause: the stream ended for good.
    pub async fn next_event(&mut self) -> Result<Event, Error> {
        let forever = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        self.next_matching(|_| true, forever, false).await
    }

    /// The first queued event `pick` accepts, or the next that comes before `deadline`
    /// (stanzas are processed meanwhile). A loss of the connection is an error when the
    /// application is told of it, or with `any_loss` (a flow that waits for an answer).
    async fn next_matching(
        &mut self,
        mut pick: impl FnMut(&Event) -> bool,
        deadline: tokio::time::Instant,
        any_loss: bool,
    ) -> Result<Event, Error> {
        loop {
            if let Some(i) = self.events.iter().position(&mut pick)
                && let Some(e) = self.events.remove(i)
            {
                return Ok(e);
            }
            match self.recv(deadline).await? {
                Got::Stanza(s) => self.process(s).await?,
                Got::Changed => {}
                Got::Lost { told } if told || any_loss => return Err(connection_lost()),
                Got::Lost { .. } => {}
            }
        }
    }

    /// The events as an async stream (each item as [`Client::next_event`] gives it; pinned, so
    /// `StreamExt::next` works on it directly).
    pub fn events(
        &mut self,
    ) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Event, Error>> + Send + '_>> {
        Box::pin(futures_util::stream::unfold(self, |c| async move {
            let e = c.next_event().await;
            Some((e, c))
        }))
    }

    /// Waits (up to the timeout) for the first event `pick` accepts and returns it; other
    /// events stay queued for [`Client::next_event`].
    ///
    /// # Errors
    /// [`Error::Timeout`]; the connection is lost.
    /// A loss of the connection is [`Error::Disconnected`], as for [`Client::next_event`].
    pub async fn wait_for(&mut self, pick: impl FnMut(&Event) -> bool) -> Result<Event, Error> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.next_matching(pick, deadline, false).await
    }

    /// Asks to see `peer`'s presence (needed to read options published for subscribers).
    ///
    /// # Errors
    /// The connection is lost.
    pub async fn subscribe(&mut self, peer: &BareJid) -> Result<(), Error> {
        self.presence_to(peer, "subscribe").await?;
        // Pending until it answers (or the roster says it approved); a new request is a new
        // chance for the address to answer.
        self.presence_errors.remove(peer);
        if !self.engine.watches(peer) && self.asked.len() < SUBSCRIPTIONS_MAX {
            self.asked.insert(peer.clone());
        }
        Ok(())
    }

    /// Lets `peer` see our presence.
    ///
    /// # Errors
    /// The connection is lost.
    pub async fn approve(&mut self, peer: &BareJid) -> Result<(), Error> {
        self.presence_to(peer, "subscribed").await
    }

    async fn presence_to(&mut self, peer: &BareJid, kind: &str) -> Result<(), Error> {
        let mut p = Element::builder("presence", "jabber:client").build();
        set_attr(&mut p, "to", peer.as_str());
        set_attr(&mut p, "type", kind);
        self.send(p).await
    }

    /// The available resources of `peer`, as seen in presence.
    #[must_use]
    pub fn resources(&self, peer: &BareJid) -> Vec<Jid> {
        self.engine.resources(peer)
    }

    /// Whether `peer` (a full JID) announces encrypted sessions (disco#info).
    ///
    /// # Errors
    /// The connection is lost; no answer in time.
    pub async fn supports(&mut self, peer: &Jid) -> Result<bool, Error> {
        Ok(self.disco(peer).await?.is_some_and(|yes| yes))
    }

    /// disco#info of `peer`: `Some(true)` it announces XEP-0116, `Some(false)` it does not,
    /// `None` it is not there ([`crate::engine::resource_gone`]).
    async fn disco(&mut self, peer: &Jid) -> Result<Option<bool>, Error> {
        let iq = self.iq_element("get", Some(peer.as_str()), Element::bare("query", DISCO_INFO));
        let r = self.request(iq).await?;
        Ok(if crate::engine::resource_gone(&r) { None } else { Some(crate::engine::announces_esessions(&r)) })
    }

    /// Negotiates a session with `peer` (a full JID, or a bare one that is available, or a
    /// service's JID), and waits for the outcome. Returns the SAS of a 4-message negotiation.
    ///
    /// # Errors
    /// [`Error::NoSupport`], [`Error::Negotiation`], [`Error::Timeout`].
    pub async fn negotiate(&mut self, peer: &Jid, mode: Mode) -> Result<Option<String>, Error> {
        // The engine says whom to ask, in order (Engine::negotiation_targets); the first that
        // announces XEP-0116 is the one.
        // Not before the application has been told of a reconnection: its session would be told
        // before it ([`Client::unsettled`]).
        if self.unsettled() {
            return Err(connection_lost());
        }
        let targets = self.engine.negotiation_targets(peer);
        let Some(first) = targets.first().cloned() else {
            return Err(Error::NotAvailable { peer: peer.to_bare(), subscribed: true });
        };
        let single = targets.len() == 1 && (peer.resource().is_some() || peer.node().is_none());
        let mut found = None;
        let mut gone = 0usize;
        let asked = targets.len();
        for t in targets {
            match self.disco(&t).await {
                Ok(Some(true)) => {
                    found = Some(t);
                    break;
                }
                Ok(None) => gone += 1,
                // A resource that does not answer is not one to negotiate with.
                Ok(Some(false)) | Err(Error::Timeout(_)) if !single => {}
                Ok(Some(false)) => {}
                Err(e) => return Err(e),
            }
        }
        // Every resource asked is gone (a presence table older than a reconnection): the
        // contact is not there, which is not "no support".
        if found.is_none() && gone == asked {
            return Err(Error::NotAvailable { peer: peer.to_bare(), subscribed: true });
        }
        let full = found.ok_or(Error::NoSupport(first))?;
        let step = self.engine.start(chrono::Utc::now(), &full, mode)?;
        self.apply(step).await?;
        let b = full.to_bare();
        let deadline = tokio::time::Instant::now() + self.timeout;
        // A loss of the connection ends the wait at once (the negotiation ends with the reset,
        // or goes on if the stream is resumed: its outcome is then an event).
        let e = self
            .next_matching(
                |e| match e {
                    // A stanza of the contact that belongs to no negotiation or session is not about
                    // this one (whose thread the engine would have recognized): a late message of
                    // an earlier exchange, e.g. with another of our resources that has left.
                    Event::Failed { failure: crate::Failure::NoSession, .. } => false,
                    Event::Negotiated { peer, offline: false, .. } | Event::Failed { peer, .. } => {
                        peer.to_bare() == b
                    }
                    _ => false,
                },
                deadline,
                true,
            )
            .await?;
        negotiation_outcome(e)
    }

    /// Sends `text` to `peer`: inside the session with it; else negotiates one when it is
    /// available (4-message; 3-message with a service, a JID without a node); else in an offline
    /// session from its published options.
    ///
    /// # Errors
    /// [`Error::NoSupport`], [`Error::NoOfflineOptions`], [`Error::Offline`] (untrusted or
    /// expired options), negotiation and connection errors. Nothing is ever sent in clear.
    pub async fn send_text(&mut self, peer: &Jid, text: &str) -> Result<Delivery, Error> {
        // Nothing is encrypted for a connection that is lost, or that changed before the client
        // handled it (a session it ended would take the text to a contact that cannot read
        // it), or whose reconnection the application has not been told of yet (it said lines
        // are not sent until then): the caller is told at once, nothing was sent.
        if self.unsettled() {
            return Err(connection_lost());
        }
        let bare = peer.to_bare();
        // The engine's rule ([`Engine::route_message`]); this carries it out.
        let mut route = self.engine.route_message(peer);
        if let Route::Negotiate(mode) = route {
            self.negotiate(peer, mode).await?;
            // A loss that came while negotiating ended the new session too: checked again.
            if self.unsettled() {
                return Err(connection_lost());
            }
            route = self.engine.route_message(peer);
        }
        let w = match route {
            Route::Session => {
                let w = self.engine.chat(&bare, text, EncryptOptions::default())?;
                self.send(w).await?;
                return Ok(Delivery::Online { sas: self.engine.sas(&bare).map(ToString::to_string) });
            }
            Route::OfflineSession => self.engine.offline_chat(chrono::Utc::now(), &bare, text)?,
            // A negotiation that opened no session (it returned an error otherwise): what the
            // engine says next.
            Route::Negotiate(_) => return Err(Error::NotProtected(bare)),
            Route::OfflineStart => {
                self.check_offline_options(&bare).await?;
                let step = self.engine.offline_start(
                    chrono::Utc::now(),
                    &bare,
                    crate::engine::body_message(text),
                    false,
                )?;
                self.apply(step).await?;
                return Ok(Delivery::Offline);
            }
        };
        self.send(w).await?;
        Ok(Delivery::Offline)
    }

    /// Re-keys the session with `peer` (an empty stanza carrying `<key/>`).
    ///
    /// # Errors
    /// [`Error::NotProtected`] without a session; [`Error::Disconnected`] while the connection
    /// is lost or its reconnection not yet told (nothing is sent).
    pub async fn rekey(&mut self, peer: &BareJid, text: &str) -> Result<(), Error> {
        if self.unsettled() {
            return Err(connection_lost());
        }
        let w = self.engine.chat(peer, text, EncryptOptions { rekey: true, publish_old: false })?;
        self.send(w).await
    }

    /// Terminates the session with `peer` and waits for the acknowledgement.
    ///
    /// # Errors
    /// [`Error::NotProtected`] without a session; [`Error::Timeout`].
    pub async fn terminate(&mut self, peer: &BareJid) -> Result<(), Error> {
        let w = self.engine.terminate(peer)?;
        self.send(w).await?;
        let b = peer.clone();
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.next_matching(
            |e| matches!(e, Event::Terminated { peer, .. } if peer.to_bare() == b),
            deadline,
            true,
        )
        .await?;
        Ok(())
    }

    /// The options form `peer` publishes for `audience`, unverified: `Ok(None)` when the node
    /// holds none, `Err(condition)` when the server refuses (access model, no node).
    ///
    /// # Errors
    /// The connection is lost; no answer in time.
    pub async fn published_options(
        &mut self,
        peer: &BareJid,
        audience: Audience,
    ) -> Result<Result<Option<Element>, String>, Error> {
        let id = crate::engine::new_thread(&mut self.rng);
        let r = self.request(pep::items_request(audience, peer.as_str(), &id)).await?;
        if r.attr("type") != Some("result") {
            return Ok(Err(condition(&r)));
        }
        Ok(Ok(pep::options_in(&r).cloned()))
    }

    /// Fetches `peer`'s offline options (the nodes in the order the engine gives: the
    /// subscribers' first when we subscribe to `peer`) and hands them to the engine, which
    /// verifies them with the keys we trust for it (XEP-0187 §3.2), as [`Client::send_text`]
    /// does before an offline session: `Ok` when one can be started with them now.
    ///
    /// # Errors
    /// [`Error::NoOfflineOptions`] (none published, or none we may read),
    /// [`Error::Offline`] (refused: untrusted signature, expired...), connection errors.
    pub async fn check_offline_options(&mut self, peer: &BareJid) -> Result<(), Error> {
        let mut last = None;
        for audience in self.engine.options_audiences(peer) {
            let x = match self.published_options(peer, audience).await? {
                Ok(Some(x)) => x,
                Ok(None) => continue,
                Err(c) => {
                    last = Some(c);
                    continue;
                }
            };
            return match self.engine.offline_options(chrono::Utc::now(), peer, &x) {
                Event::OfflineOptions { refused: None, .. } => Ok(()),
                Event::OfflineOptions { refused: Some(c), .. } => {
                    Err(Error::Offline(esession_offline::Error::Refused(c)))
                }
                _ => Err(Error::Protocol("unexpected answer to the options".into())),
            };
        }
        Err(Error::NoOfflineOptions { peer: peer.clone(), condition: last })
    }

    /// Publishes offline options (one set for presence subscribers, one for everyone), keeping
    /// their secrets sealed in the account first. Sessions end first (XEP-0116 §5).
    ///
    /// # Errors
    /// [`Error::Config`] without an identity key; [`Error::Server`] when a publish is refused.
    pub async fn publish_offline(&mut self) -> Result<(), Error> {
        let keys: Vec<PrivateKey> = self.account.identity()?.into_iter().collect();
        let plan = self.engine.plan(keys, self.lifetime, None)?;
        let (step, sets) = self.engine.go_offline(
            chrono::Utc::now(),
            &plan,
            &[Audience::Subscribers, Audience::Everyone],
            false,
        )?;
        // Terminates first; the IQs are sent below, each awaited.
        let publish_iqs: usize = sets.iter().map(|p| p.iqs.len()).sum();
        let mut send = step.send;
        send.truncate(send.len().saturating_sub(publish_iqs));
        for s in send {
            self.send(s).await?;
        }
        self.events.extend(step.events);
        for p in sets {
            let which = match p.audience {
                Audience::Subscribers => "subscribers",
                Audience::Everyone => "everyone",
            };
            self.account.keep_offline(which, &p.secrets)?;
            // The engine's flow says what each answer leads to (PublishFlow); this sends.
            let mut flow = PublishFlow::new(p.audience, &p.iqs);
            let mut answer = None;
            loop {
                let id = crate::engine::new_thread(&mut self.rng);
                match flow.next(answer.as_ref(), &id) {
                    PepStep::Request(iq) => answer = Some(self.request(iq).await?),
                    PepStep::Failed { condition } => {
                        return Err(Error::Server {
                            action: format!("publishing the {which} options"),
                            condition,
                        });
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// Withdraws both option sets and forgets their secrets (for `offline withdraw`).
    ///
    /// # Errors
    /// [`Error::Server`] when the withdraw is refused.
    pub async fn withdraw_offline(&mut self) -> Result<(), Error> {
        for (audience, which) in [(Audience::Subscribers, "subscribers"), (Audience::Everyone, "everyone")] {
            self.withdraw(audience).await.map_err(|c| Error::Server {
                action: format!("withdrawing the {which} options"),
                condition: c,
            })?;
            self.account.forget_offline(which)?;
        }
        Ok(())
    }

    /// Withdraws one set of options, as the engine's [`WithdrawFlow`] says (Example 8, then the
    /// node deleted when the server refuses it). Returns the error condition when neither
    /// worked.
    async fn withdraw(&mut self, audience: Audience) -> Result<(), String> {
        let mut flow = WithdrawFlow::new(audience);
        let mut answer = None;
        loop {
            let id = crate::engine::new_thread(&mut self.rng);
            match flow.next(answer.as_ref(), &id) {
                PepStep::Request(iq) => answer = Some(self.request(iq).await.map_err(|e| e.to_string())?),
                PepStep::Failed { condition } => return Err(condition),
                _ => return Ok(()),
            }
        }
    }

    /// Goes offline: terminates every session, publishes offline options, and disconnects.
    ///
    /// # Errors
    /// As [`Client::publish_offline`].
    pub async fn go_offline(mut self) -> Result<(), Error> {
        self.publish_offline().await?;
        self.disconnect().await
    }

    /// Ends every session (their terminates are sent), sends unavailable presence and closes
    /// the stream.
    ///
    /// # Errors
    /// The stream could not be closed cleanly.
    pub async fn disconnect(mut self) -> Result<(), Error> {
        tracing::info!(account = %self.me.to_bare(), "disconnecting");
        let step = self.engine.terminate_all();
        for s in step.send {
            let _ = self.send(s).await;
        }
        let mut p = Element::builder("presence", "jabber:client").build();
        set_attr(&mut p, "type", "unavailable");
        let _ = self.send(p).await;
        // What was queued goes out first (in order: the last one sent means all were), unless
        // the connection is down; then the stream is closed.
        if let Some(mut t) = self.last_token.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), t.wait_for(StanzaStage::Sent)).await;
        }
        tokio::time::timeout(Duration::from_secs(5), self.xmpp.close())
            .await
            .map_err(|_| Error::Timeout("closing the stream"))
    }
}

/// Trust on first use, for bots and other programs without a person to compare fingerprints
/// or SAS: what [`Engine::first_use`] says of the key `peer` proved in the session of
/// `thread`, and a [`FirstUse::First`] key is pinned for `peer` in `account` at once (trusted,
/// marked pinned on first use, not verified: `KeyRecord::pinned`), the engine seeing it from
/// its next negotiation. A later session with another key is
/// then [`FirstUse::Changed`] (the engine also raises `Alert::KeyChanged`): the caller should
/// terminate it. `None` without such a session.
///
/// It is weaker than a verified fingerprint or SAS: whoever answers first for a JID is
/// trusted as that JID.
///
/// # Errors
/// The account's store cannot be written or read again.
pub fn trust_on_first_use(
    account: &Account,
    engine: &mut Engine,
    peer: &BareJid,
    thread: &str,
) -> Result<Option<FirstUse>, Error> {
    let u = engine.first_use(peer, thread);
    if let Some(FirstUse::First(key)) = &u {
        account.trust_store()?.pin(peer, key.clone()).map_err(Error::Store)?;
        // The engine's store caches the associations: a fresh view of the file sees the pin.
        engine.set_trust_store(account.trust_store()?);
        tracing::info!(peer = %peer, "key pinned on first use");
    }
    Ok(u)
}

/// The return from an absence, without I/O (XEP-0187 §3.4): the secrets of both option sets
/// are read from `account` and handed to the engine, whose step begins with the withdraw of
/// the subscribers' options (step 1) and ends with our presence; the account's stored copy of
/// the subscribers' secrets is destroyed at once (step 2), the everyone set's kept (it stays
/// valid until it is replaced, §6.1). [`Client::connect`] runs it on login.
///
/// # Errors
/// The account's records cannot be read or written.
pub fn come_back_from(
    account: &Account,
    engine: &mut Engine,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<crate::Step, Error> {
    let subscribers = account.offline("subscribers")?;
    let everyone = account.offline("everyone")?;
    let step = engine.come_back(now, subscribers, everyone, true)?;
    // X187-3.4-01 (step 2): the subscribers' secrets are in memory now; the stored copy goes.
    account.forget_offline("subscribers")?;
    Ok(step)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn server_addresses_by_name_or_address_with_the_default_port() {
        let ok = |s: &str| split_server(s).unwrap();
        assert_eq!(ok("xmpp.example.org"), ("xmpp.example.org".into(), 5222));
        assert_eq!(ok("xmpp.example.org:5223"), ("xmpp.example.org".into(), 5223));
        assert_eq!(ok("localhost"), ("localhost".into(), 5222));
        assert_eq!(ok("127.0.0.1:15222"), ("127.0.0.1".into(), 15222));
        assert_eq!(ok("127.0.0.1"), ("127.0.0.1".into(), 5222));
        assert_eq!(ok("[::1]:5223"), ("::1".into(), 5223));
        assert_eq!(ok("[::1]"), ("::1".into(), 5222));
        assert_eq!(ok("::1"), ("::1".into(), 5222));
        assert_eq!(ok("bücher.example"), ("bücher.example".into(), 5222));
        for bad in ["", ":5222", "host:", "host:0", "host:70000", "a b", "a..b", "[::1", "host:port", "x/y"] {
            assert_eq!(split_server(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_loopback_hosts_are_loopback() {
        for h in ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.org", "10.0.0.1", "192.0.2.1", "::2", "localhost.example.org"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[tokio::test]
    async fn plain_tcp_to_a_remote_server_or_domain_is_refused_before_any_connection() {
        for (jid, server) in [
            ("a@example.org", "192.0.2.1:5222"),
            ("a@example.org", "xmpp.example.org"),
            ("a@example.org", ""),
        ] {
            let o = Options::new(jid, "pw", server);
            let e = Client::connect(o, Account::in_memory().unwrap()).await.unwrap_err();
            assert!(matches!(&e, Error::Config(m) if m.contains("loopback")), "{server}: {e}");
        }
    }

    /// Bob (an account's durable stores) negotiates with Alice, whose key he has never seen,
    /// then with someone else presenting another key under Alice's JID.
    #[test]
    #[cfg(feature = "durable")]
    fn trust_on_first_use_pins_the_first_key_and_refuses_another() {
        use crate::relay::Relay;
        use esession_crypto::{CryptoProvider, ModpGroup};
        use esession_negotiate::{Check, Config};
        let dir = std::env::temp_dir().join(format!("esession-tofu-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let acct =
            Account::open(&dir, crate::Sealing::Key(esession_crypto::SecretBytes::new(vec![3; 32]))).unwrap();
        let g14 = |mut c: Config| {
            c.provider = CryptoProvider { modp: vec![ModpGroup::G14], ..CryptoProvider::default() };
            c
        };
        let alice_key = PrivateKey::from_pkcs8_pem(include_str!("../tests/vectors/pem/rsa.pem")).unwrap();
        let alice_pub = alice_key.public_key();
        let other_key = PrivateKey::generate_rsa(&mut os_rng(), 2048).unwrap();
        let mut r = Relay::new(chrono::Utc::now());
        let bob = crate::builder::engine_for(g14(Config::default()), &acct).unwrap();
        assert!(!bob.trusts_on_first_use(), "off by default");
        let b = r.add("bob@example.com/bot", bob).unwrap();
        let a = r
            .add(
                "alice@example.org/pda",
                Engine::new(g14(Config::with_identity(alice_key)), crate::EngineStores::in_memory()),
            )
            .unwrap();
        let m = r
            .add(
                "alice@example.org/evil",
                Engine::new(g14(Config::with_identity(other_key)), crate::EngineStores::in_memory()),
            )
            .unwrap();
        let alice = parse_jid("alice@example.org").unwrap().to_bare();
        let thread_of = |events: Vec<Event>| {
            events.into_iter().find_map(|e| match e {
                Event::Negotiated { thread, .. } => Some(thread),
                _ => None,
            })
        };
        assert_eq!(trust_on_first_use(&acct, r.engine(b), &alice, "esession-none").unwrap(), None);

        // Off: a key nobody trusted is refused (XEP-0116 §4.6.2).
        let key_trust = |events: &[Event]| {
            events.iter().any(|e| {
                matches!(
                    e,
                    Event::Failed {
                        failure: crate::Failure::Negotiation(esession_negotiate::Error::PeerMisbehaved {
                            check: Check::KeyTrust,
                            ..
                        }),
                        ..
                    }
                )
            })
        };
        r.start(a, "bob@example.com/bot", Mode::Four).unwrap();
        r.drive();
        assert!(key_trust(&r.take_events(b)));
        // The key refused is remembered, for its fingerprint to be shown (issue 19).
        assert_eq!(r.engine(b).refused_key(&alice), Some(alice_pub.clone()));
        // On: Alice's first key is accepted, then pinned.
        r.engine(b).set_trust_on_first_use(true);
        r.start(a, "bob@example.com/bot", Mode::Four).unwrap();
        r.drive();
        let t1 = thread_of(r.take_events(b)).unwrap();
        // The engine pinned it itself as the session opened: the first use is already known.
        let u = trust_on_first_use(&acct, r.engine(b), &alice, &t1).unwrap();
        assert_eq!(u, Some(FirstUse::Known));
        // Pinned, not verified (issue 19: it was recorded, and shown, as verified), in the
        // account's file and in the engine's view at once.
        let pinned = |k: &esession_negotiate::KeyRecord| k.key == alice_pub && k.pinned && !k.verified;
        assert!(acct.associations().unwrap().iter().any(pinned));
        assert!(r.engine(b).trust().for_jid(&alice).iter().any(|k| pinned(k)));
        assert_eq!(trust_on_first_use(&acct, r.engine(b), &alice, &t1).unwrap(), Some(FirstUse::Known));

        // Another key under Alice's JID: refused, nothing pinned.
        r.start(m, "bob@example.com/bot", Mode::Four).unwrap();
        r.drive();
        let events = r.take_events(b);
        assert!(key_trust(&events), "{events:?}");
        assert_eq!(thread_of(events), None);
        let pinned_keys = acct.associations().unwrap().into_iter().filter(|k| k.pinned).count();
        assert_eq!(pinned_keys, 1, "only the first key is pinned");
        assert!(acct.associations().unwrap().iter().all(|k| !k.verified), "nothing is verified");

        // The user confirms the SAS of a session with the pinned key: the key is verified, no
        // longer only pinned (in the file, and in the engine's view).
        r.start(a, "bob@example.com/bot", Mode::Four).unwrap();
        r.drive();
        let _ = r.take_events(b);
        r.engine(b).confirm_sas(&alice).unwrap();
        let verified = |k: &esession_negotiate::KeyRecord| k.key == alice_pub && k.verified && !k.pinned;
        assert!(acct.associations().unwrap().iter().any(verified));
        assert!(r.engine(b).trust().for_jid(&alice).iter().any(|k| verified(k)));
        drop(r);
        drop(acct);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Alice (an account, trust on first use) is away; Bob, whom she has never met, starts an
    /// offline session with her published options: on her return it is accepted (not held)
    /// and his key pinned.
    #[test]
    #[cfg(feature = "durable")]
    fn trust_on_first_use_accepts_and_pins_a_strangers_offline_start() {
        use crate::relay::Relay;
        use esession_crypto::{CryptoProvider, ModpGroup};
        use esession_negotiate::{Config, MemoryRetained, MemoryTrust};
        use esession_offline::Audience;
        let dir = std::env::temp_dir().join(format!("esession-tofu-offline-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let acct =
            Account::open(&dir, crate::Sealing::Key(esession_crypto::SecretBytes::new(vec![5; 32]))).unwrap();
        let fixture = include_str!("../tests/vectors/pem/rsa.pem");
        let alice_key = PrivateKey::from_pkcs8_pem(fixture).unwrap();
        acct.set_identity(&alice_key, false).unwrap();
        let g14 = |mut c: Config| {
            c.provider = CryptoProvider { modp: vec![ModpGroup::G14], ..CryptoProvider::default() };
            c
        };
        let mut alice = crate::builder::engine_for(g14(Config::default()), &acct).unwrap();
        alice.set_trust_on_first_use(true);
        let bob_key = PrivateKey::generate_rsa(&mut os_rng(), 2048).unwrap();
        let bob_pub = bob_key.public_key();
        let mut bob_trust = MemoryTrust::default();
        bob_trust.trust(&parse_jid("alice@example.org").unwrap().to_bare(), alice_key.public_key());
        let stores = crate::EngineStores {
            trust: Box::new(bob_trust),
            retained: Box::new(MemoryRetained::default()),
            replay: Box::new(esession_offline::replay::MemoryReplay::default()),
        };
        let bob = Engine::new(g14(Config::with_identity(bob_key)), stores);
        let mut r = Relay::new(chrono::Utc::now());
        let a = r.add("alice@example.org/pda", alice).unwrap();
        let b = r.add("bob@example.com/laptop", bob).unwrap();
        let now = r.now();
        let plan = r.engine(a).plan(
            vec![PrivateKey::from_pkcs8_pem(fixture).unwrap()],
            chrono::Duration::hours(1),
            None,
        );
        let (step, mut sets) =
            r.engine(a).go_offline(now, &plan.unwrap(), &[Audience::Subscribers], false).unwrap();
        r.output(a, step);
        r.drive();
        r.disconnect(a);
        r.drive();
        let secrets = sets.pop().unwrap().secrets;
        let checked = r.fetch_options(b, "alice@example.org").unwrap();
        assert!(matches!(checked, Some(Event::OfflineOptions { refused: None, .. })), "{checked:?}");
        let alice_bare = parse_jid("alice@example.org").unwrap().to_bare();
        let start = crate::engine::body_message("hello from a stranger");
        let step = r.engine(b).offline_start(now, &alice_bare, start, false).unwrap();
        r.output(b, step);
        r.drive();
        // Bob's terminate when he sees her back is not delivered: the session stays open to
        // look at (a client pins as the session is established, before anything else comes).
        r.set_filter(Box::new(move |from, s| (from != b).then_some(s)));
        let step = r.engine(a).come_back(now, Some(secrets), None, true).unwrap();
        r.reconnect(a, step);
        r.drive();
        let events = r.take_events(a);
        assert!(events.iter().any(|e| e.body().as_deref() == Some("hello from a stranger")), "{events:?}");
        assert!(!events.iter().any(|e| matches!(e, Event::Untrusted { .. })), "not held: {events:?}");
        let thread = events
            .iter()
            .find_map(|e| match e {
                Event::Negotiated { thread, offline: true, .. } => Some(thread.clone()),
                _ => None,
            })
            .unwrap();
        let bob_bare = parse_jid("bob@example.com").unwrap().to_bare();
        // Pinned by the engine as the offline session opened (pinned, not verified, in the
        // account's file).
        assert!(acct.associations().unwrap().iter().any(|k| k.key == bob_pub && k.pinned && !k.verified));
        let u = trust_on_first_use(&acct, r.engine(a), &bob_bare, &thread).unwrap();
        assert_eq!(u, Some(FirstUse::Known));
        drop(r);
        drop(acct);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_peer_error_answer_to_a_request_is_a_refusal() {
        let peer = parse_jid("bob@x/r").unwrap();
        let failed = |failure| Event::Failed { peer: peer.clone(), failure };
        let e = negotiation_outcome(failed(crate::Failure::PeerError {
            condition: Some("not-acceptable".into()),
            fields: vec!["modp".into()],
        }))
        .unwrap_err();
        assert!(
            matches!(&e, Error::Negotiation(esession_negotiate::Error::Rejected { condition: Some(c), fields })
                if c == "not-acceptable" && fields == &["modp"]),
            "{e:?}"
        );
        let e = negotiation_outcome(failed(crate::Failure::Expired)).unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e:?}");
        let e = negotiation_outcome(failed(crate::Failure::RateLimited)).unwrap_err();
        assert!(matches!(e, Error::Server { .. }), "{e:?}");
    }
}
