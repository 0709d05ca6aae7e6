//! Bring your own tokio-xmpp client: the application owns the `tokio_xmpp::Client` (its
//! connection, reconnection, other extensions) and drives the sans-IO [`Engine`] with it:
//! every stanza the server delivers goes to [`Engine::handle`], every [`Step`] the engine
//! returns is sent in order, and its events are the application's. This is what
//! [`esession_xmpp::Client`] does, minus its conveniences (disco before a negotiation, fetching
//! offline options, waiting for answers).
//!
//! ```text
//! cargo run -p esession-xmpp --example own_client -- JID PASSWORD [SERVER [DATA_DIR [PEER]]]
//! cargo run -p esession-xmpp --features starttls --example own_client -- bob@example.org secret
//! ```
//!
//! Without the `starttls` feature the connection is plain TCP, so SERVER must be a loopback
//! `ip:port` (default `127.0.0.1:5222`): a local test server. With it, STARTTLS to SERVER
//! (`host[:port]`, port 5222 by default) or to the JID's domain through DNS SRV. Given a
//! PEER (a full JID), a 4-message negotiation with it starts once online; every message
//! received in a session is answered in it, IQ requests with an error.
//!
//! Keys: a session is established only with a contact whose key the account trusts
//! (`Account::trust`, or `esession trust verify` on DATA_DIR); the `echo_bot` example shows
//! trust on first use instead (`Engine::set_trust_on_first_use`, then
//! `esession_xmpp::client::trust_on_first_use` on `Event::Negotiated` to pin the key).

use esession_xmpp::builder::engine_for;
use esession_xmpp::client::come_back_from;
use esession_xmpp::engine::iq_error;
use esession_xmpp::minidom::Element;
use esession_xmpp::{Account, Config, Engine, Event, Mode, Sealing, Step, parse_jid};
use futures_util::StreamExt;
use tokio_xmpp::parsers::stanza::Stanza;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Sends what a step of the engine produced, in order, and hands its events back.
async fn apply(xmpp: &mut tokio_xmpp::Client, step: Step) -> Result<Vec<Event>, Failure> {
    for stanza in step.send {
        send(xmpp, stanza).await?;
    }
    Ok(step.events)
}

/// Sends one stanza.
async fn send(xmpp: &mut tokio_xmpp::Client, stanza: Element) -> Result<(), Failure> {
    xmpp.send_stanza(Stanza::try_from(stanza)?).await?;
    Ok(())
}

/// The application's side of the events.
async fn on_event(xmpp: &mut tokio_xmpp::Client, engine: &mut Engine, event: Event) -> Result<(), Failure> {
    let now = chrono::Utc::now();
    match &event {
        Event::Negotiated { peer, sas, .. } => {
            // A person compares the SAS with the peer's and then calls Engine::confirm_sas.
            println!(
                "session with {peer}; SAS {}",
                sas.as_ref().map(ToString::to_string).unwrap_or_default()
            );
            let hello = engine.chat(&peer.to_bare(), "hello from my own client", Default::default())?;
            send(xmpp, hello).await?;
        }
        Event::Message { peer, id, .. } => {
            println!("{peer}: {}", event.body().unwrap_or_default());
            match engine.chat(&peer.to_bare(), "received", Default::default()) {
                Ok(reply) => send(xmpp, reply).await?,
                // An offline message whose sender has no session with us now: nothing is sent
                // in clear (negotiate first, Engine::start).
                Err(e) => eprintln!("not answered: {e}"),
            }
            if let Some(id) = id {
                engine.ack(id)?;
            }
        }
        Event::Iq { stanza } => send(xmpp, iq_error(stanza, "service-unavailable")).await?,
        other => println!("{other:?}"),
    }
    // Expiries (pending negotiations, unacknowledged terminates) also run on every input.
    for e in apply(xmpp, engine.tick(now)).await? {
        println!("{e:?}");
    }
    Ok(())
}

/// The connection, owned by the application.
fn connect(jid: &str, password: &str, server: Option<&str>) -> Result<tokio_xmpp::Client, Failure> {
    let jid = tokio_xmpp::jid::Jid::new(jid)?;
    let timeouts = tokio_xmpp::xmlstream::Timeouts::default();
    #[cfg(feature = "starttls")]
    {
        use tokio_xmpp::connect::DnsConfig;
        let dns = match server.map(|s| s.rsplit_once(':').unwrap_or((s, "5222"))) {
            Some((host, port)) => DnsConfig::no_srv(host, port.parse()?),
            None => DnsConfig::srv_default_client(jid.domain().as_str()),
        };
        Ok(tokio_xmpp::Client::new_starttls(jid, password, dns, timeouts))
    }
    #[cfg(not(feature = "starttls"))]
    {
        let addr: std::net::SocketAddr = server.unwrap_or("127.0.0.1:5222").parse()?;
        if !addr.ip().is_loopback() {
            return Err("plain TCP only to a loopback server: build with --features starttls".into());
        }
        let dns = tokio_xmpp::connect::DnsConfig::addr(&addr.to_string());
        Ok(tokio_xmpp::Client::new_plaintext(jid, password, dns, timeouts))
    }
}

async fn run() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [jid, password, rest @ ..] = args.as_slice() else {
        return Err("usage: own_client JID PASSWORD [SERVER [DATA_DIR [PEER]]]".into());
    };
    let server = rest.first().map(String::as_str).filter(|s| !s.is_empty());
    let data = rest.get(1).map_or("own-client-data", String::as_str);
    let peer = rest.get(2).map(|p| parse_jid(p)).transpose()?;

    // The account's stores and identity (if any); the negotiation configuration is ours.
    let account = Account::open(std::path::Path::new(data), Sealing::KeyFile)?;
    let mut engine = engine_for(Config::default(), &account)?;
    let mut xmpp = connect(jid, password, server)?;

    while let Some(event) = xmpp.next().await {
        let now = chrono::Utc::now();
        let events = match event {
            tokio_xmpp::Event::Online { bound_jid, .. } => {
                engine.set_account(&parse_jid(&bound_jid.to_string())?);
                // XEP-0187 §3.4: the return (withdraw our offline options, accept the offline
                // sessions stored for us), which ends with our presence.
                let mut events = apply(&mut xmpp, come_back_from(&account, &mut engine, now)?).await?;
                if let Some(p) = &peer {
                    events.extend(apply(&mut xmpp, engine.start(now, p, Mode::Four)?).await?);
                }
                events
            }
            tokio_xmpp::Event::Stanza(stanza) => {
                let step = engine.handle(now, &Element::from(stanza));
                apply(&mut xmpp, step).await?
            }
            // tokio-xmpp reconnects by itself; Online comes again.
            tokio_xmpp::Event::Disconnected(e) => {
                eprintln!("disconnected: {e}");
                Vec::new()
            }
        };
        for e in events {
            on_event(&mut xmpp, &mut engine, e).await?;
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("own_client: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
