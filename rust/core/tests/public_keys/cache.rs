//! The cache policy: LRU bound, freshness, the reload window, single flight, stale-on-error.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::Duration;

use keycloak_aws_kms_core::public_keys::cache::{
    CachePolicy, KeyCache, Loaded, ManualClock, Permit, ReloadStart, SourceId, TOUCH_GRANULARITY,
};
use keycloak_aws_kms_core::{Error, ErrorKind};

const SECOND: Duration = Duration::from_secs(1);
/// 2026-01-01T00:00:00Z; the manual clock's wall-clock start.
const EPOCH_START_MILLIS: u64 = 1_767_225_600_000;

fn policy() -> CachePolicy {
    CachePolicy {
        min_time_between_requests: 10 * SECOND,
        max_entries: NonZeroUsize::new(100).unwrap(),
        max_idle: 3600 * SECOND,
        max_age: 86_400 * SECOND,
        stale_on_error: 3600 * SECOND,
        follower_wait: 5 * SECOND,
    }
}

fn cache_with(policy: CachePolicy) -> (KeyCache<String>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(EPOCH_START_MILLIS));
    (KeyCache::with_clock(policy, clock.clone()), clock)
}

fn keys(value: &str) -> Result<Loaded<String>, Error> {
    Ok(Loaded {
        value: value.to_owned(),
        expires_at_epoch_millis: None,
    })
}

fn failure() -> Result<Loaded<String>, Error> {
    Err(Error::new(
        ErrorKind::PublicKeysUnavailable,
        "java.io.IOException: connection refused",
    ))
}

/// A loader that counts its calls.
#[derive(Default)]
struct Calls(AtomicUsize);

impl Calls {
    fn load(&self, value: &str) -> Result<Loaded<String>, Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        keys(value)
    }

    fn fail(&self) -> Result<Loaded<String>, Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        failure()
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn a_source_is_cached_after_its_first_load_and_served_without_loading_again() {
    let (cache, _) = cache_with(policy());
    assert_eq!(cache.get("realm::idp::a"), None);
    assert_eq!(
        cache.reload("realm::idp::a", || keys("v1")).unwrap(),
        Some("v1".to_owned())
    );
    assert_eq!(cache.get("realm::idp::a"), Some("v1".to_owned()));
    let stats = cache.stats();
    assert_eq!(
        (stats.entries, stats.hits, stats.misses, stats.loads),
        (1, 1, 1, 1)
    );
}

#[test]
fn the_least_recently_used_source_goes_first_when_the_cache_is_full() {
    let (cache, _) = cache_with(CachePolicy {
        max_entries: NonZeroUsize::new(2).unwrap(),
        ..policy()
    });
    cache.reload("a", || keys("a")).unwrap();
    cache.reload("b", || keys("b")).unwrap();
    // Using a makes b the least recently used.
    assert!(cache.get("a").is_some());
    cache.reload("c", || keys("c")).unwrap();

    assert_eq!(cache.get("b"), None);
    assert_eq!(cache.get("a"), Some("a".to_owned()));
    assert_eq!(cache.get("c"), Some("c".to_owned()));
    assert_eq!(cache.stats().entries, 2);
}

#[test]
fn keys_past_the_expiry_their_source_gave_are_not_served_as_fresh() {
    let (cache, clock) = cache_with(policy());
    let expires = EPOCH_START_MILLIS + 60_000;
    cache
        .reload("saml", || {
            Ok(Loaded {
                value: "metadata keys".to_owned(),
                expires_at_epoch_millis: Some(expires),
            })
        })
        .unwrap();
    clock.advance(59 * SECOND);
    assert!(cache.get("saml").is_some());
    clock.advance(2 * SECOND);
    assert_eq!(cache.get("saml"), None);
}

#[test]
fn keys_older_than_the_max_age_are_not_served_as_fresh() {
    let (cache, clock) = cache_with(CachePolicy {
        max_age: 100 * SECOND,
        ..policy()
    });
    cache.reload("s", || keys("v1")).unwrap();
    clock.advance(100 * SECOND);
    assert!(cache.get("s").is_some());
    clock.advance(SECOND);
    assert_eq!(cache.get("s"), None);
}

#[test]
fn a_source_unused_for_longer_than_the_max_idle_time_is_dropped() {
    let (cache, clock) = cache_with(CachePolicy {
        max_idle: 60 * SECOND,
        ..policy()
    });
    cache.reload("s", || keys("v1")).unwrap();
    clock.advance(50 * SECOND);
    assert!(cache.get("s").is_some(), "a use resets the idle time");
    clock.advance(50 * SECOND);
    assert!(cache.get("s").is_some());
    clock.advance(61 * SECOND);
    assert_eq!(cache.get("s"), None);
    assert_eq!(cache.stats().entries, 0);
}

#[test]
fn a_second_reload_within_the_window_does_not_load_and_returns_the_current_keys() {
    let (cache, clock) = cache_with(policy());
    let calls = Calls::default();
    cache.reload("s", || calls.load("v1")).unwrap();
    clock.advance(9 * SECOND);
    assert_eq!(
        cache.reload("s", || calls.load("v2")).unwrap(),
        Some("v1".to_owned())
    );
    assert_eq!(calls.count(), 1);
    assert_eq!(cache.stats().throttled, 1);

    clock.advance(SECOND);
    assert_eq!(
        cache.reload("s", || calls.load("v2")).unwrap(),
        Some("v2".to_owned())
    );
    assert_eq!(calls.count(), 2);
}

#[test]
fn a_failing_source_is_throttled_like_a_working_one() {
    let (cache, clock) = cache_with(policy());
    let calls = Calls::default();
    let error = cache.reload("down", || calls.fail()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PublicKeysUnavailable);
    assert!(error.message().contains("connection refused"), "{error}");
    assert!(error.message().contains("down"), "{error}");

    // Within the window nothing is loaded and nothing is waited for: no keys, no error.
    for _ in 0..100 {
        clock.advance(Duration::from_millis(50));
        assert_eq!(cache.reload("down", || calls.fail()).unwrap(), None);
    }
    assert_eq!(calls.count(), 1);

    clock.advance(5 * SECOND);
    assert_eq!(
        cache.reload("down", || calls.load("back")).unwrap(),
        Some("back".to_owned())
    );
    assert_eq!(calls.count(), 2);
    let stats = cache.stats();
    assert_eq!(
        (stats.loads, stats.load_failures, stats.throttled),
        (2, 1, 100)
    );
}

#[test]
fn a_flood_of_unknown_kids_does_not_keep_a_rotation_from_being_picked_up_after_the_window() {
    let (cache, clock) = cache_with(policy());
    let calls = Calls::default();
    cache.reload("idp", || calls.load("old keys")).unwrap();

    // An attacker sends tokens with made-up kids: each one asks for a reload.
    for _ in 0..1000 {
        clock.advance(Duration::from_millis(5));
        assert_eq!(
            cache.reload("idp", || calls.load("never")).unwrap(),
            Some("old keys".to_owned())
        );
    }
    assert_eq!(calls.count(), 1, "the flood cost no download");

    // The identity provider rotates; the first token with the new kid after the window gets it.
    clock.advance(5 * SECOND);
    assert_eq!(
        cache.reload("idp", || calls.load("rotated keys")).unwrap(),
        Some("rotated keys".to_owned())
    );
    assert_eq!(cache.get("idp"), Some("rotated keys".to_owned()));
    assert_eq!(calls.count(), 2);
}

#[test]
fn concurrent_reloads_of_one_source_share_one_load() {
    const CALLERS: usize = 16;
    let (cache, _) = cache_with(policy());
    let cache = Arc::new(cache);
    let calls = Arc::new(Calls::default());
    let start = Arc::new(Barrier::new(CALLERS));

    let handles: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, calls, start) = (cache.clone(), calls.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                cache.reload("s", || {
                    // Hold the load until every other caller has joined it.
                    while cache.stats().coalesced < (CALLERS - 1) as u64 {
                        thread::yield_now();
                    }
                    calls.load("shared")
                })
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap().unwrap(), Some("shared".to_owned()));
    }
    assert_eq!(calls.count(), 1);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.coalesced), (1, (CALLERS - 1) as u64));
}

#[test]
fn callers_waiting_for_a_failed_load_get_the_same_failure() {
    let (cache, _) = cache_with(policy());
    let cache = Arc::new(cache);
    let (joined_tx, joined_rx) = mpsc::channel();
    let follower = {
        let cache = cache.clone();
        thread::spawn(move || {
            // Wait until the leader is inside its load, then join it.
            joined_rx.recv().unwrap();
            cache.reload("s", || panic!("a follower must not load"))
        })
    };
    let leader = cache.reload("s", || {
        joined_tx.send(()).unwrap();
        while cache.stats().coalesced < 1 {
            thread::yield_now();
        }
        failure()
    });
    let followed = follower.join().unwrap();
    assert_eq!(leader.unwrap_err().kind(), ErrorKind::PublicKeysUnavailable);
    assert_eq!(
        followed.unwrap_err().kind(),
        ErrorKind::PublicKeysUnavailable
    );
}

#[test]
fn a_caller_waits_for_another_callers_load_no_longer_than_the_follower_wait() {
    let (cache, clock) = cache_with(CachePolicy {
        follower_wait: Duration::from_millis(20),
        max_age: 60 * SECOND,
        ..policy()
    });
    let cache = Arc::new(cache);
    cache.reload("cached", || keys("old")).unwrap();
    clock.advance(61 * SECOND); // stale, within the stale-on-error limit

    for (source, expect_keys) in [("cached", true), ("empty", false)] {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let leader = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.reload(source, || {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    keys("new")
                })
            })
        };
        started_rx.recv().unwrap();
        let answer = cache.reload(source, || panic!("a follower must not load"));
        if expect_keys {
            assert_eq!(answer.unwrap(), Some("old".to_owned()));
        } else {
            let error = answer.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::PublicKeysUnavailable);
            assert!(error.message().contains("20 ms"), "{error}");
        }
        release_tx.send(()).unwrap();
        assert_eq!(leader.join().unwrap().unwrap(), Some("new".to_owned()));
    }
}

#[test]
fn the_last_good_keys_serve_when_a_reload_fails_until_the_stale_limit_past_their_freshness() {
    let (cache, clock) = cache_with(CachePolicy {
        max_age: 100 * SECOND,
        stale_on_error: 50 * SECOND,
        ..policy()
    });
    cache.reload("s", || keys("good")).unwrap();

    // Still fresh: an unknown kid asks for a reload, which fails; the good keys stay.
    clock.advance(20 * SECOND);
    assert_eq!(cache.reload("s", failure).unwrap(), Some("good".to_owned()));
    assert_eq!(cache.get("s"), Some("good".to_owned()));

    // Past the max age but within the stale limit.
    clock.advance(120 * SECOND);
    assert_eq!(cache.get("s"), None, "stale keys are never a plain hit");
    assert_eq!(cache.reload("s", failure).unwrap(), Some("good".to_owned()));

    // Past the stale limit the failure reaches the caller.
    clock.advance(20 * SECOND);
    let error = cache.reload("s", failure).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PublicKeysUnavailable);
    assert!(error.message().contains("connection refused"));

    let stats = cache.stats();
    assert_eq!((stats.load_failures, stats.stale_served), (3, 2));
}

#[test]
fn a_throttled_reload_returns_stale_keys_within_the_stale_limit_and_nothing_after_it() {
    let (cache, clock) = cache_with(CachePolicy {
        max_age: 100 * SECOND,
        stale_on_error: 50 * SECOND,
        ..policy()
    });
    let calls = Calls::default();
    cache.reload("s", || calls.load("good")).unwrap();

    clock.advance(145 * SECOND); // stale, 5 s before the stale limit
    assert_eq!(
        cache.reload("s", || calls.fail()).unwrap(),
        Some("good".to_owned())
    );
    clock.advance(SECOND);
    assert_eq!(
        cache.reload("s", || calls.fail()).unwrap(),
        Some("good".to_owned()),
        "throttled: the stale keys, without a load"
    );
    clock.advance(5 * SECOND); // past the stale limit, still inside the window
    assert_eq!(cache.reload("s", || calls.fail()).unwrap(), None);
    assert_eq!(calls.count(), 2);
}

#[test]
fn keys_loaded_while_their_source_is_evicted_are_returned_but_not_kept() {
    let (cache, _) = cache_with(policy());
    let answer = cache
        .reload("realm-1::client::c::keyuse::SIG", || {
            // The client is updated while its old keys are being downloaded.
            cache.evict("realm-1::client::c::keyuse::SIG");
            keys("from before the update")
        })
        .unwrap();
    assert_eq!(answer, Some("from before the update".to_owned()));
    assert_eq!(cache.get("realm-1::client::c::keyuse::SIG"), None);
    // The eviction also forgot the window: the next use loads at once.
    assert_eq!(
        cache
            .reload("realm-1::client::c::keyuse::SIG", || keys("new"))
            .unwrap(),
        Some("new".to_owned())
    );
}

#[test]
fn evicting_a_source_forgets_its_keys_and_its_window() {
    let (cache, _) = cache_with(policy());
    let calls = Calls::default();
    cache.reload("s", || calls.load("v1")).unwrap();
    cache.evict("s");
    assert_eq!(cache.get("s"), None);
    assert_eq!(
        cache.reload("s", || calls.load("v2")).unwrap(),
        Some("v2".to_owned())
    );
    assert_eq!(calls.count(), 2);
}

#[test]
fn evicting_a_realm_prefix_forgets_only_that_realms_sources() {
    let (cache, _) = cache_with(policy());
    for source in [
        "r1::client::a::keyuse::SIG",
        "r1::idp::b",
        "r10::idp::c",
        "r2::idp::d",
    ] {
        cache.reload(source, || keys(source)).unwrap();
    }
    cache.evict_prefix("r1::");
    assert_eq!(cache.get("r1::client::a::keyuse::SIG"), None);
    assert_eq!(cache.get("r1::idp::b"), None);
    assert!(cache.get("r10::idp::c").is_some());
    assert!(cache.get("r2::idp::d").is_some());

    cache.clear();
    assert_eq!(cache.stats().entries, 0);
    assert_eq!(cache.get("r2::idp::d"), None);
}

#[test]
fn reconfiguring_keeps_the_cached_keys_and_a_smaller_bound_drops_the_least_recently_used() {
    let (cache, clock) = cache_with(policy());
    for source in ["a", "b", "c"] {
        cache.reload(source, || keys(source)).unwrap();
    }
    cache.configure(CachePolicy {
        max_entries: NonZeroUsize::new(2).unwrap(),
        min_time_between_requests: Duration::ZERO,
        ..policy()
    });
    assert_eq!(cache.get("a"), None);
    assert!(cache.get("b").is_some());
    assert!(cache.get("c").is_some());
    // The new window applies at once.
    assert_eq!(
        cache.reload("b", || keys("b2")).unwrap(),
        Some("b2".to_owned())
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        cache.reload("b", || keys("b3")).unwrap(),
        Some("b3".to_owned())
    );
}

#[test]
fn a_loader_that_panics_releases_its_source_for_later_reloads() {
    let (cache, clock) = cache_with(policy());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.reload("s", || panic!("loader bug"))
    }));
    assert!(panicked.is_err());
    clock.advance(10 * SECOND);
    assert_eq!(
        cache.reload("s", || keys("v1")).unwrap(),
        Some("v1".to_owned())
    );
}

#[test]
fn a_loader_that_asks_for_its_own_source_again_is_answered_without_waiting_for_itself() {
    let (cache, _) = cache_with(CachePolicy {
        follower_wait: 60 * SECOND,
        ..policy()
    });
    let answer = cache
        .reload("s", || {
            assert_eq!(cache.reload("s", || keys("nested")).unwrap(), None);
            keys("outer")
        })
        .unwrap();
    assert_eq!(answer, Some("outer".to_owned()));
}

#[test]
fn a_leader_gets_a_permit_and_its_completion_is_what_waiting_callers_receive() {
    let (cache, _clock) = cache_with(policy());
    let cache = Arc::new(cache);
    let permit = match cache.begin_reload("s").unwrap() {
        ReloadStart::Lead(permit) => permit,
        ReloadStart::Answer(answer) => panic!("the first reload leads, got {answer:?}"),
    };
    assert_eq!(cache.loads_in_progress(), 1);
    let follower = {
        let cache = cache.clone();
        thread::spawn(move || cache.begin_reload("s"))
    };
    // The follower waits inside the cache until the leader reports.
    thread::sleep(Duration::from_millis(50));
    assert!(!follower.is_finished());
    assert_eq!(
        cache.complete(permit, keys("new")).unwrap(),
        Some("new".to_owned())
    );
    match follower.join().unwrap().unwrap() {
        ReloadStart::Answer(answer) => assert_eq!(answer, Some("new".to_owned())),
        ReloadStart::Lead(_) => panic!("a follower must not lead"),
    }
    assert_eq!(cache.get("s"), Some("new".to_owned()));
    assert_eq!(cache.loads_in_progress(), 0);
}

#[test]
fn a_permit_never_completed_expires_after_the_follower_wait_and_the_source_leads_again_after_the_window(
) {
    let (cache, clock) = cache_with(policy());
    let ReloadStart::Lead(abandoned) = cache.begin_reload("s").unwrap() else {
        panic!("the first reload leads");
    };
    clock.advance(6 * SECOND); // past the 5 s follower wait: the permit has expired
    assert_eq!(cache.loads_in_progress(), 0);
    // Still inside the 10 s window of that attempt: throttled, nothing cached.
    assert!(matches!(
        cache.begin_reload("s").unwrap(),
        ReloadStart::Answer(None)
    ));
    clock.advance(5 * SECOND);
    let ReloadStart::Lead(fresh) = cache.begin_reload("s").unwrap() else {
        panic!("after the window the source leads again");
    };
    // The abandoned leader reports late: it may use its keys, but they are not kept.
    assert_eq!(
        cache.complete(abandoned, keys("late")).unwrap(),
        Some("late".to_owned())
    );
    assert_eq!(cache.get("s"), None);
    assert_eq!(
        cache.complete(fresh, keys("new")).unwrap(),
        Some("new".to_owned())
    );
    assert_eq!(cache.get("s"), Some("new".to_owned()));
}

#[test]
fn a_failed_permit_serves_the_last_good_keys_and_an_unknown_one_reports_the_reason() {
    let (cache, clock) = cache_with(policy());
    cache.reload("s", || keys("good")).unwrap();
    clock.advance(11 * SECOND);
    let ReloadStart::Lead(permit) = cache.begin_reload("s").unwrap() else {
        panic!("after the window the source leads");
    };
    assert_eq!(
        cache.complete(permit, failure()).unwrap(),
        Some("good".to_owned())
    );
    let error = cache
        .complete(Permit::from_raw(987_654), failure())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PublicKeysUnavailable);
    assert!(error.message().contains("connection refused"), "{error}");
}

// Source ids and the lock-free hit path.

/// Loads `source` with `value` as a leader and returns the id the cache gave it.
fn load_with_id(cache: &KeyCache<String>, source: &str, value: &str) -> SourceId {
    let (ReloadStart::Lead(permit), Some(id)) = cache.begin_reload_with_id(source).unwrap() else {
        panic!("expected to lead the load of {source}, with an id");
    };
    cache.complete(permit, keys(value)).unwrap();
    id
}

#[test]
fn a_hit_by_id_serves_the_fresh_keys_and_counts_as_a_hit() {
    let (cache, _) = cache_with(policy());
    let id = load_with_id(&cache, "realm::idp::a", "v1");
    assert_eq!(cache.get_by_id(id, Clone::clone), Some("v1".to_owned()));
    assert_eq!(
        cache.get_with_id("realm::idp::a"),
        (Some("v1".to_owned()), Some(id))
    );
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (2, 0));
}

#[test]
fn a_source_being_loaded_has_an_id_but_no_hit_until_its_keys_arrive() {
    let (cache, _) = cache_with(policy());
    let (ReloadStart::Lead(permit), Some(id)) = cache.begin_reload_with_id("s").unwrap() else {
        panic!("the first reload leads");
    };
    assert_eq!(cache.get_by_id(id, Clone::clone), None);
    cache.complete(permit, keys("v1")).unwrap();
    assert_eq!(cache.get_by_id(id, Clone::clone), Some("v1".to_owned()));
    assert_eq!(cache.stats().misses, 1);
}

#[test]
fn an_evicted_sources_id_names_nothing_and_is_never_given_to_another_source() {
    let (cache, _) = cache_with(policy());
    let first = load_with_id(&cache, "realm::client::a::keyuse::SIG", "a");
    cache.evict("realm::client::a::keyuse::SIG");
    assert_eq!(cache.get_by_id(first, Clone::clone), None);
    assert!(
        cache.begin_reload_by_id(first).unwrap().is_none(),
        "an unknown id is answered as unknown"
    );
    assert_eq!(cache.ids_in_use(), 0);

    // The freed slot goes to the next source, under a new generation: the old id does not name it.
    let other = load_with_id(&cache, "realm::idp::b", "b");
    assert_ne!(other, first);
    assert_eq!(cache.get_by_id(first, Clone::clone), None);
    assert!(cache.begin_reload_by_id(first).unwrap().is_none());
    assert_eq!(cache.get_by_id(other, Clone::clone), Some("b".to_owned()));

    // The evicted source, cached again, gets an id of its own too.
    let again = load_with_id(&cache, "realm::client::a::keyuse::SIG", "a2");
    assert!(again != first && again != other);
    assert_eq!(cache.get_by_id(again, Clone::clone), Some("a2".to_owned()));
}

#[test]
fn ids_made_up_by_the_caller_name_nothing() {
    let (cache, _) = cache_with(policy());
    let id = load_with_id(&cache, "s", "v1");
    for raw in [0, 1, u64::MAX, id.to_raw() + 1, id.to_raw() ^ (1 << 63)] {
        let made_up = SourceId::from_raw(raw);
        assert_eq!(cache.get_by_id(made_up, Clone::clone), None, "{raw:#x}");
        assert!(
            cache.begin_reload_by_id(made_up).unwrap().is_none(),
            "{raw:#x}"
        );
    }
}

#[test]
fn clear_and_prefix_evictions_retire_the_ids_of_what_they_drop() {
    let (cache, _) = cache_with(policy());
    let r1 = load_with_id(&cache, "r1::idp::a", "a");
    let r10 = load_with_id(&cache, "r10::idp::b", "b");
    cache.evict_prefix("r1::");
    assert_eq!(cache.get_by_id(r1, Clone::clone), None);
    assert_eq!(cache.get_by_id(r10, Clone::clone), Some("b".to_owned()));
    cache.clear();
    assert_eq!(cache.get_by_id(r10, Clone::clone), None);
    assert_eq!((cache.ids_in_use(), cache.stats().entries), (0, 0));
}

#[test]
fn a_reload_by_id_follows_the_same_window_as_a_reload_by_key() {
    let (cache, clock) = cache_with(policy());
    let id = load_with_id(&cache, "s", "v1");
    let Some((ReloadStart::Answer(answer), Some(same))) = cache.begin_reload_by_id(id).unwrap()
    else {
        panic!("inside the window a reload by id is throttled");
    };
    assert_eq!((answer, same), (Some("v1".to_owned()), id));
    clock.advance(11 * SECOND);
    let Some((ReloadStart::Lead(permit), Some(same))) = cache.begin_reload_by_id(id).unwrap()
    else {
        panic!("after the window a reload by id leads");
    };
    assert_eq!(same, id, "a reload keeps the source's id");
    cache.complete(permit, keys("v2")).unwrap();
    assert_eq!(cache.get_by_id(id, Clone::clone), Some("v2".to_owned()));
    assert_eq!(cache.stats().throttled, 1);
}

#[test]
fn hits_by_id_count_as_uses_for_the_lru_bound() {
    let (cache, clock) = cache_with(CachePolicy {
        max_entries: NonZeroUsize::new(2).unwrap(),
        ..policy()
    });
    let a = load_with_id(&cache, "a", "a");
    clock.advance(SECOND);
    let b = load_with_id(&cache, "b", "b");
    clock.advance(SECOND);
    // Only the lock-free path sees this use of "a"; "b" is the least recently used now.
    assert!(cache.get_by_id(a, Clone::clone).is_some());
    clock.advance(SECOND);
    let c = load_with_id(&cache, "c", "c");
    assert_eq!(cache.get_by_id(b, Clone::clone), None, "b went first");
    assert_eq!(cache.get("b"), None);
    assert_eq!(cache.get_by_id(a, Clone::clone), Some("a".to_owned()));
    assert_eq!(cache.get_by_id(c, Clone::clone), Some("c".to_owned()));
    assert_eq!((cache.stats().entries, cache.ids_in_use()), (2, 2));
}

#[test]
fn the_least_recently_used_source_goes_first_among_many_used_by_id() {
    let (cache, clock) = cache_with(CachePolicy {
        max_entries: NonZeroUsize::new(8).unwrap(),
        ..policy()
    });
    let ids: Vec<SourceId> = (0..8)
        .map(|n| {
            clock.advance(SECOND);
            load_with_id(&cache, &format!("s{n}"), &format!("v{n}"))
        })
        .collect();
    // Used by id in the order 7, 6, ..., 0 except 3: the least recently used is s3, then s7.
    for n in (0..8).rev().filter(|n| *n != 3) {
        clock.advance(SECOND);
        assert!(cache.get_by_id(ids[n], Clone::clone).is_some());
    }
    clock.advance(SECOND);
    load_with_id(&cache, "new-1", "x");
    assert_eq!(
        cache.get_by_id(ids[3], Clone::clone),
        None,
        "s3 was used longest ago"
    );
    clock.advance(SECOND);
    load_with_id(&cache, "new-2", "y");
    assert_eq!(cache.get_by_id(ids[7], Clone::clone), None, "then s7");
    for n in [0, 1, 2, 4, 5, 6] {
        assert!(
            cache.get_by_id(ids[n], Clone::clone).is_some(),
            "s{n} stays"
        );
    }
}

#[test]
fn a_smaller_bound_keeps_the_sources_most_recently_used_by_id() {
    let (cache, clock) = cache_with(policy());
    let a = load_with_id(&cache, "a", "a");
    clock.advance(SECOND);
    let b = load_with_id(&cache, "b", "b");
    clock.advance(SECOND);
    assert!(cache.get_by_id(a, Clone::clone).is_some());
    cache.configure(CachePolicy {
        max_entries: NonZeroUsize::new(1).unwrap(),
        ..policy()
    });
    assert_eq!(cache.get_by_id(b, Clone::clone), None);
    assert_eq!(cache.get_by_id(a, Clone::clone), Some("a".to_owned()));
}

#[test]
fn hits_by_id_keep_a_source_from_idling_out_and_an_idle_one_is_replaced_under_a_new_id() {
    let (cache, clock) = cache_with(CachePolicy {
        max_idle: 60 * SECOND,
        ..policy()
    });
    let id = load_with_id(&cache, "s", "v1");
    clock.advance(59 * SECOND);
    assert!(
        cache.get_by_id(id, Clone::clone).is_some(),
        "a use resets the idle time"
    );
    clock.advance(59 * SECOND);
    assert!(cache.get_by_id(id, Clone::clone).is_some());
    assert!(
        cache.get("s").is_some(),
        "the locked path sees the hits' use too"
    );
    clock.advance(61 * SECOND);
    assert_eq!(cache.get_by_id(id, Clone::clone), None, "idle: not a hit");
    let Some((ReloadStart::Lead(permit), Some(new_id))) = cache.begin_reload_by_id(id).unwrap()
    else {
        panic!("an idle source is dropped and loads again");
    };
    assert_ne!(new_id, id);
    cache.complete(permit, keys("v2")).unwrap();
    assert_eq!(cache.get_by_id(id, Clone::clone), None);
    assert_eq!(cache.get_by_id(new_id, Clone::clone), Some("v2".to_owned()));
}

#[test]
fn a_use_is_recorded_to_within_the_touch_granularity() {
    let (cache, clock) = cache_with(CachePolicy {
        max_idle: 10 * TOUCH_GRANULARITY,
        max_entries: NonZeroUsize::new(100).unwrap(),
        ..policy()
    });
    let id = load_with_id(&cache, "s", "v1");
    for _ in 0..20 {
        clock.advance(TOUCH_GRANULARITY);
        assert!(cache.get_by_id(id, Clone::clone).is_some());
    }
}

#[test]
fn keys_past_their_max_age_or_expiry_are_not_a_hit_by_id() {
    let (cache, clock) = cache_with(CachePolicy {
        max_age: 100 * SECOND,
        ..policy()
    });
    let id = load_with_id(&cache, "s", "v1");
    clock.advance(100 * SECOND);
    assert!(cache.get_by_id(id, Clone::clone).is_some());
    clock.advance(SECOND);
    assert_eq!(cache.get_by_id(id, Clone::clone), None);

    let (ReloadStart::Lead(permit), Some(saml)) = cache.begin_reload_with_id("saml").unwrap()
    else {
        panic!("the first reload leads");
    };
    cache
        .complete(
            permit,
            Ok(Loaded {
                value: "metadata".to_owned(),
                expires_at_epoch_millis: Some(EPOCH_START_MILLIS + 101_000 + 30_000),
            }),
        )
        .unwrap();
    clock.advance(30 * SECOND);
    assert!(cache.get_by_id(saml, Clone::clone).is_some());
    clock.advance(SECOND);
    assert_eq!(cache.get_by_id(saml, Clone::clone), None);
    // A shorter max age applies to hits by id at once.
    let recent = load_with_id(&cache, "recent", "v1");
    clock.advance(2 * SECOND);
    assert!(cache.get_by_id(recent, Clone::clone).is_some());
    cache.configure(CachePolicy {
        max_age: SECOND,
        ..policy()
    });
    assert_eq!(cache.get_by_id(recent, Clone::clone), None);
}

#[test]
fn concurrent_hits_by_id_never_see_another_sources_keys_while_sources_churn() {
    let (cache, _) = cache_with(CachePolicy {
        min_time_between_requests: Duration::ZERO,
        max_entries: NonZeroUsize::new(4).unwrap(),
        ..policy()
    });
    let cache = Arc::new(cache);
    let ids: Vec<(String, SourceId)> = (0..4)
        .map(|n| {
            let source = format!("s{n}");
            let id = load_with_id(&cache, &source, &source);
            (source, id)
        })
        .collect();
    let readers: Vec<_> = ids
        .iter()
        .cloned()
        .map(|(source, id)| {
            let cache = Arc::clone(&cache);
            thread::spawn(move || {
                let mut hits = 0_u32;
                for _ in 0..20_000 {
                    if let Some(value) = cache.get_by_id(id, Clone::clone) {
                        assert_eq!(value, source, "an id served another source's keys");
                        hits += 1;
                    }
                }
                hits
            })
        })
        .collect();
    // Meanwhile: evict and reload sources, so that slots are freed and given out again.
    for round in 0..500 {
        let victim = format!("s{}", round % 4);
        cache.evict(&victim);
        load_with_id(&cache, &format!("other-{round}"), "other");
        cache.evict(&format!("other-{round}"));
    }
    for reader in readers {
        reader.join().unwrap();
    }
    assert!(cache.ids_in_use() <= 4);
}

#[test]
fn a_source_whose_load_hangs_keeps_its_window_when_other_sources_push_it_out_of_a_full_cache() {
    let (cache, clock) = cache_with(CachePolicy {
        max_entries: NonZeroUsize::new(2).unwrap(),
        follower_wait: Duration::from_millis(50),
        ..policy()
    });
    // A SAML-metadata-like loader that never returns: its permit is never completed.
    let ReloadStart::Lead(_hanging) = cache.begin_reload("hanging").unwrap() else {
        panic!("the first reload leads");
    };
    // More sources than the cache holds arrive meanwhile.
    for source in ["other-1", "other-2", "other-3"] {
        cache.reload(source, || keys(source)).unwrap();
    }
    // Callers of the hanging source neither start a second load nor wait past the follower
    // wait: while the attempt runs they follow it and time out; once its permit expired
    // (inside the window of that attempt) they are throttled.
    // (Another thread: the leader's own thread asking again is answered without waiting.)
    let started = std::time::Instant::now();
    match thread::scope(|scope| scope.spawn(|| cache.begin_reload("hanging")).join()).unwrap() {
        Err(error) => assert_eq!(error.kind(), ErrorKind::PublicKeysUnavailable, "{error}"),
        Ok(ReloadStart::Lead(_)) => panic!("a second load started while the first still runs"),
        Ok(ReloadStart::Answer(answer)) => panic!("answered {answer:?} instead of following"),
    }
    assert!(
        started.elapsed() < SECOND,
        "a follower waited {:?}",
        started.elapsed()
    );
    clock.advance(6 * SECOND);
    match cache.begin_reload("hanging").unwrap() {
        ReloadStart::Lead(_) => panic!("a second load started inside the window"),
        ReloadStart::Answer(None) => {}
        ReloadStart::Answer(Some(value)) => panic!("keys from nowhere: {value}"),
    }
    // Once the window of that attempt is over, the source may load again.
    clock.advance(5 * SECOND);
    assert!(matches!(
        cache.begin_reload("hanging").unwrap(),
        ReloadStart::Lead(_)
    ));
}

// The lock-free throttle of a reload by id (the unknown-kid path).

#[test]
fn a_reload_by_id_inside_the_window_is_answered_from_the_slot_with_the_locked_paths_counts() {
    let (cache, clock) = cache_with(policy());
    let id = load_with_id(&cache, "s", "v1");
    for _ in 0..3 {
        let Some((ReloadStart::Answer(answer), Some(same))) = cache.begin_reload_by_id(id).unwrap()
        else {
            panic!("inside the window a reload by id is throttled");
        };
        assert_eq!((answer.as_deref(), same), (Some("v1"), id));
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.throttled, stats.loads, stats.stale_served),
        (3, 1, 0)
    );
    // The window ends exactly where the locked path says it does.
    clock.advance(10 * SECOND);
    assert!(matches!(
        cache.begin_reload_by_id(id).unwrap(),
        Some((ReloadStart::Lead(_), Some(_)))
    ));
}

#[test]
fn a_throttled_reload_by_id_serves_stale_keys_within_the_stale_limit_and_none_after_it() {
    let (cache, clock) = cache_with(CachePolicy {
        max_age: 20 * SECOND,
        stale_on_error: 30 * SECOND,
        max_idle: 3600 * SECOND,
        ..policy()
    });
    let id = load_with_id(&cache, "s", "v1");
    clock.advance(25 * SECOND);
    // Past the max age: the reload leads; it fails, and the window starts again.
    let Some((ReloadStart::Lead(permit), _)) = cache.begin_reload_by_id(id).unwrap() else {
        panic!("stale keys lead a reload after the window");
    };
    assert_eq!(
        cache.complete(permit, failure()).unwrap().as_deref(),
        Some("v1")
    );
    // Throttled (no lock): the stale keys, counted as stale.
    let Some((ReloadStart::Answer(answer), _)) = cache.begin_reload_by_id(id).unwrap() else {
        panic!("throttled after the failed attempt");
    };
    assert_eq!(answer.as_deref(), Some("v1"));
    assert_eq!(cache.stats().stale_served, 2);
    // Past the stale limit, still inside a window: throttled with nothing. Attempts at 36 s and
    // 46 s fail (fresh until 20 s, usable until 50 s); at 51 s the window of 46 s still runs.
    for advance in [11, 10] {
        clock.advance(advance * SECOND);
        let Some((ReloadStart::Lead(permit), _)) = cache.begin_reload_by_id(id).unwrap() else {
            panic!("a new window, a new attempt");
        };
        let _ = cache.complete(permit, failure());
    }
    clock.advance(5 * SECOND);
    assert!(matches!(
        cache.begin_reload_by_id(id).unwrap(),
        Some((ReloadStart::Answer(None), _))
    ));
}

#[test]
fn a_reload_by_id_while_a_load_runs_joins_it_instead_of_answering_throttled() {
    let (cache, clock) = cache_with(policy());
    let cache = Arc::new(cache);
    let id = load_with_id(&cache, "s", "v1");
    clock.advance(11 * SECOND);
    let Some((ReloadStart::Lead(permit), _)) = cache.begin_reload_by_id(id).unwrap() else {
        panic!("after the window the reload leads");
    };
    // Inside the new attempt's window, but its load is running: the follower waits for it.
    let follower = {
        let cache = Arc::clone(&cache);
        thread::spawn(move || match cache.begin_reload_by_id(id).unwrap() {
            Some((ReloadStart::Answer(answer), _)) => answer,
            _ => panic!("a follower does not lead"),
        })
    };
    while cache.stats().coalesced == 0 {
        thread::yield_now();
    }
    cache.complete(permit, keys("v2")).unwrap();
    assert_eq!(follower.join().unwrap().as_deref(), Some("v2"));
    // Done loading: throttled again, from the slot, with the new keys.
    let Some((ReloadStart::Answer(answer), _)) = cache.begin_reload_by_id(id).unwrap() else {
        panic!("throttled after the load");
    };
    assert_eq!(answer.as_deref(), Some("v2"));
}

#[test]
fn a_permit_that_expired_leaves_its_source_throttled_by_id_for_the_rest_of_its_window() {
    let (cache, clock) = cache_with(CachePolicy {
        min_time_between_requests: 60 * SECOND,
        ..policy()
    });
    let id = load_with_id(&cache, "s", "v1");
    clock.advance(61 * SECOND);
    let Some((ReloadStart::Lead(_never_completed), _)) = cache.begin_reload_by_id(id).unwrap()
    else {
        panic!("after the window the reload leads");
    };
    // Past the follower wait: the permit expires (on the next locked call) and the source is
    // throttled by id, with its keys, until the window of that attempt ends.
    clock.advance(6 * SECOND);
    assert_eq!(cache.loads_in_progress(), 0);
    for _ in 0..2 {
        let Some((ReloadStart::Answer(answer), _)) = cache.begin_reload_by_id(id).unwrap() else {
            panic!("throttled inside the expired attempt's window");
        };
        assert_eq!(answer.as_deref(), Some("v1"));
    }
    clock.advance(55 * SECOND);
    assert!(matches!(
        cache.begin_reload_by_id(id).unwrap(),
        Some((ReloadStart::Lead(_), _))
    ));
}

#[test]
fn an_idle_source_is_not_throttled_by_id_but_replaced_under_a_new_id() {
    let (cache, clock) = cache_with(CachePolicy {
        max_idle: 60 * SECOND,
        min_time_between_requests: 3600 * SECOND,
        ..policy()
    });
    let id = load_with_id(&cache, "s", "v1");
    clock.advance(61 * SECOND);
    match cache.begin_reload_by_id(id).unwrap() {
        None => {}
        Some((ReloadStart::Lead(_), Some(new))) => assert_ne!(new, id),
        Some((start, new)) => panic!("an idle source answered {start:?} under {new:?}"),
    }
}
