//! An account in memory against the test server (Prosody or ejabberd, `ESESSION_SERVER`): what
//! an application built without the `durable` feature (no redb) runs. `cargo xtask e2e` runs
//! it with `--no-default-features`. Alice trusts Bob's key through her account; Bob trusts on
//! first use, which pins Alice's key in his account in memory; a session and a message work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use esession_negotiate::Mode;
use esession_xmpp::{Account, Client, Event, PrivateKey, parse_bare};
use support::{PASSWORD, Prosody, fixture};

#[tokio::test]
#[ignore = "end-to-end against Prosody or ejabberd: run by `cargo xtask e2e` and `cargo xtask test`"]
async fn accounts_in_memory_negotiate_and_pin_on_first_use() {
    let p = Prosody::start(&["alice", "bob"]);
    let alice_key = PrivateKey::from_pkcs8_pem(&fixture("rsa.pem")).unwrap();
    let bob_key =
        PrivateKey::generate_rsa(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng), 2048).unwrap();
    let (alice_jid, bob_jid) = (parse_bare("alice@localhost").unwrap(), parse_bare("bob@localhost").unwrap());

    let alice_account = Account::in_memory().unwrap();
    assert!(alice_account.is_in_memory());
    alice_account.set_identity(&alice_key, false).unwrap();
    alice_account.trust(&bob_jid, bob_key.public_key()).unwrap();
    let bob_account = Account::in_memory().unwrap();
    bob_account.set_identity(&bob_key, false).unwrap();

    let builder =
        |user: &str| Client::builder(&format!("{user}@localhost/mem"), PASSWORD).server(&p.server());
    let mut alice = builder("alice").connect(alice_account).await.unwrap();
    let mut bob = builder("bob").trust_on_first_use(true).connect(bob_account).await.unwrap();
    let bob_full = bob.jid().clone();
    let (sas, _) = tokio::join!(
        alice.negotiate(&bob_full, Mode::Four),
        bob.wait_for(|e| matches!(e, Event::Negotiated { .. }))
    );
    assert!(sas.unwrap().is_some());
    alice.send_text(&bob_full, "from memory").await.unwrap();
    let e = bob.wait_for(|e| matches!(e, Event::Message { .. })).await.unwrap();
    assert_eq!(e.body().as_deref(), Some("from memory"));
    // Bob's account (in memory) pinned Alice's key (not verified), and his engine sees it.
    let pinned = bob.account().associations().unwrap();
    assert!(
        pinned.iter().any(|r| r.key == alice_key.public_key() && r.pinned && r.jids.contains(&alice_jid)),
        "{pinned:?}"
    );
    assert!(bob.engine().trust().trusts(&alice_jid, &alice_key.public_key()));
}
