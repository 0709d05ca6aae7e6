//! TLS against the test server (Prosody or ejabberd, `ESESSION_SERVER`) with a self-signed
//! certificate (feature `starttls`; run by `cargo xtask e2e`): STARTTLS, and direct TLS
//! (XEP-0368) on the server's direct-TLS port. The client trusts the certificate through
//! SSL_CERT_FILE, logs in, and a session works over it (one client names the server by
//! address, the other by host name); without that trust the login fails with a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use esession_negotiate::Mode;
use esession_xmpp::{Account, Client, Error, Event, Options, Sealing, Tls};
use support::{PASSWORD, Prosody};

fn options(server: &str, user: &str) -> Options {
    with_tls(server, user, Tls::StartTls)
}

fn with_tls(server: &str, user: &str, tls: Tls) -> Options {
    let mut o = Options::new(&format!("{user}@localhost/tls"), PASSWORD, server);
    o.tls = tls;
    o.timeout = std::time::Duration::from_secs(10);
    o
}

/// Runs the test `test` of this binary again in a child process with SSL_CERT_FILE set to the
/// server's certificate (the environment cannot be changed safely in a running test), and
/// `vars`; it must pass.
fn trusted_child(test: &str, p: &Prosody, vars: &[(&str, String)]) {
    let data = p.dir.join("accounts");
    std::fs::create_dir_all(&data).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--ignored"])
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("ESESSION_TLS_DATA", &data)
        .env("SSL_CERT_FILE", p.dir.join("certs/localhost.crt"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Alice and Bob logged in with `alice` and `bob`: a session, and a message in it.
async fn a_session_works(mut alice: Client, mut bob: Client) {
    let bob_jid = bob.jid().clone();
    let (sas, _) = tokio::join!(
        alice.negotiate(&bob_jid, Mode::Four),
        bob.wait_for(|e| matches!(e, Event::Negotiated { .. }))
    );
    assert!(sas.unwrap().is_some());
    alice.send_text(&bob_jid, "over TLS").await.unwrap();
    let e = bob.wait_for(|e| matches!(e, Event::Message { .. })).await.unwrap();
    assert_eq!(e.body().as_deref(), Some("over TLS"));
}

const TEST: &str = "starttls_with_a_self_signed_certificate";

#[tokio::test]
#[ignore = "end-to-end against Prosody: run by `cargo xtask e2e` and `cargo xtask test`"]
async fn starttls_with_a_self_signed_certificate() {
    // The half that trusts the certificate runs in a child process of this test binary with
    // SSL_CERT_FILE set (the environment cannot be changed safely in a running test).
    if let Ok(server) = std::env::var("ESESSION_TLS_SERVER") {
        let data = std::path::PathBuf::from(std::env::var("ESESSION_TLS_DATA").unwrap());
        let open = |u: &str| Account::open(&data.join(u), Sealing::KeyFile).unwrap();
        let alice = Client::connect(options(&server, "alice"), open("alice")).await.unwrap();
        // Bob names the server by its host name (resolved, then STARTTLS to the JID's domain).
        let by_name = server.replace("127.0.0.1", "localhost");
        let bob = Client::connect(options(&by_name, "bob"), open("bob")).await.unwrap();
        a_session_works(alice, bob).await;
        return;
    }
    let p = Prosody::start_with(&["alice", "bob"], true);
    // Plain TCP: the server requires encryption, the login fails.
    let acct = Account::open(&p.data("alice"), Sealing::KeyFile).unwrap();
    assert!(Client::connect(Options::new("alice@localhost", PASSWORD, &p.server()), acct).await.is_err());
    // STARTTLS with a certificate nobody trusts: a clear error, not a hang.
    let acct = Account::open(&p.data("alice"), Sealing::KeyFile).unwrap();
    let e = Client::connect(options(&p.server(), "alice"), acct).await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("SSL_CERT_FILE"), "the error says what to do: {e}");
    // Trusted: the child half.
    trusted_child(TEST, &p, &[("ESESSION_TLS_SERVER", p.server())]);
}

const DIRECT: &str = "direct_tls_with_a_self_signed_certificate";

#[tokio::test]
#[ignore = "end-to-end against Prosody or ejabberd: run by `cargo xtask e2e` and `cargo xtask test`"]
async fn direct_tls_with_a_self_signed_certificate() {
    if let Ok(server) = std::env::var("ESESSION_DIRECT_TLS_SERVER") {
        let data = std::path::PathBuf::from(std::env::var("ESESSION_TLS_DATA").unwrap());
        let open = |u: &str| Account::open(&data.join(u), Sealing::KeyFile).unwrap();
        // TLS from the first octet: the STARTTLS port answers in clear, so the handshake fails
        // there (the client does not fall back to STARTTLS).
        let starttls_port = std::env::var("ESESSION_STARTTLS_SERVER").unwrap();
        let e = Client::connect(with_tls(&starttls_port, "alice", Tls::DirectTls), open("alice"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("STARTTLS"), "the error says what to do: {e}");
        let alice = Client::connect(with_tls(&server, "alice", Tls::DirectTls), open("alice")).await.unwrap();
        // Bob names the server by its host name (resolved, then TLS for the JID's domain).
        let by_name = server.replace("127.0.0.1", "localhost");
        let bob = Client::connect(with_tls(&by_name, "bob", Tls::DirectTls), open("bob")).await.unwrap();
        a_session_works(alice, bob).await;
        return;
    }
    let p = Prosody::start_with(&["alice", "bob"], true);
    let direct = format!("127.0.0.1:{}", p.tls_port.unwrap());
    // No default port for direct TLS (5223 is only a convention), and no server at all: a
    // configuration error before anything is sent.
    for server in ["127.0.0.1", "localhost", ""] {
        let acct = Account::open(&p.data("alice"), Sealing::KeyFile).unwrap();
        let e = Client::connect(with_tls(server, "alice", Tls::DirectTls), acct).await.unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{server:?}: {e}");
    }
    // A certificate nobody trusts: a clear error, not a hang.
    let acct = Account::open(&p.data("alice"), Sealing::KeyFile).unwrap();
    let e = Client::connect(with_tls(&direct, "alice", Tls::DirectTls), acct).await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("SSL_CERT_FILE"), "the error says what to do: {e}");
    // Trusted: the child half.
    trusted_child(
        DIRECT,
        &p,
        &[("ESESSION_DIRECT_TLS_SERVER", direct), ("ESESSION_STARTTLS_SERVER", p.server())],
    );
}
