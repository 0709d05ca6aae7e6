//! Conformance audit (issue 22): tests that fail when the requirement of their row is broken.

use crate::*;
use esession_crypto::{DhPool, ModpGroup};

/// X116-7.2-01: the e or d of each online ESession is its own. Three negotiations of Alice and
/// three answers of Bob, every pair drawn from one shared pool (as esession-xmpp's background
/// pool serves them) and, once the pool is empty, from the generator: the three He, and the
/// three d, are pairwise distinct (a pool that handed a pair out twice, or kept a pair for the
/// next session, would repeat them).
#[test]
fn each_negotiation_draws_its_own_dh_values_from_a_shared_pool() {
    let cfg = Arc::new(small_cfg(Config::default()));
    let mut rng = TestRng::new(72);
    let mut pool = DhPool::new(&[ModpGroup::G1], 2).unwrap();
    pool.refill(&mut rng).unwrap();
    assert_eq!(pool.available(ModpGroup::G1), 2);
    let mut b = Side::new(73);
    let (mut hes, mut ds) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let thread = format!("t{i}");
        let mut alice = Initiator::new(cfg.clone(), j(BOB), &thread);
        alice.start(Mode::Four, &mut PooledEntropy { rng: &mut rng, pool: &mut pool }).unwrap();
        let req = sent(&drain(&mut alice)).remove(0);
        let he = values(&req, "dhhashes").unwrap();
        assert_eq!(he.len(), 1);
        hes.push(he[0].clone());
        let mut bob = Responder::new(cfg.clone(), j(ALICE), &thread);
        bob.handle(
            at(0),
            &req,
            &mut PooledEntropy { rng: &mut rng, pool: &mut pool },
            &mut Stores { trust: &mut b.trust, retained: &mut b.retained },
        )
        .unwrap();
        let resp = sent(&drain(&mut bob)).remove(0);
        let d = values(&resp, "dhkeys").unwrap();
        assert_eq!(d.len(), 1);
        ds.push(d[0].clone());
    }
    assert_eq!(pool.available(ModpGroup::G1), 0, "every pooled pair was handed out");
    for list in [&hes, &ds] {
        let mut unique = list.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 3, "a DH value served two sessions: {list:?}");
    }
}
