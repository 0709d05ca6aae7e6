//! STARTTLS against Prosody with a self-signed certificate (feature `starttls`; run by
//! `cargo xtask e2e`): the client trusts the certificate through SSL_CERT_FILE, logs in, and a
//! session works over it (one client names the server by address, the other by host name);
//! without that trust the login fails with a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use esession_negotiate::Mode;
use esession_xmpp::{Account, Client, Error, Event, Options, Sealing, Tls};
use support::{PASSWORD, Prosody};

fn options(server: &str, user: &str) -> Options {
    let mut o = Options::new(&format!("{user}@localhost/tls"), PASSWORD, server);
    o.tls = Tls::StartTls;
    o.timeout = std::time::Duration::from_secs(10);
    o
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
        let mut alice = Client::connect(options(&server, "alice"), open("alice")).await.unwrap();
        // Bob names the server by its host name (resolved, then STARTTLS to the JID's domain).
        let by_name = server.replace("127.0.0.1", "localhost");
        let mut bob = Client::connect(options(&by_name, "bob"), open("bob")).await.unwrap();
        let bob_jid = bob.jid().clone();
        let (sas, _) = tokio::join!(
            alice.negotiate(&bob_jid, Mode::Four),
            bob.wait_for(|e| matches!(e, Event::Negotiated { .. }))
        );
        assert!(sas.unwrap().is_some());
        alice.send_text(&bob_jid, "over TLS").await.unwrap();
        let e = bob.wait_for(|e| matches!(e, Event::Message { .. })).await.unwrap();
        assert_eq!(e.body().as_deref(), Some("over TLS"));
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
    // Trusted: the child half.
    let data = p.dir.join("accounts");
    std::fs::create_dir_all(&data).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--ignored"])
        .env("ESESSION_TLS_SERVER", p.server())
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
