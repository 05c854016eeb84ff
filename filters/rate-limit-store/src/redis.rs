//! The Redis (webdis) store: one callout per request decides every window
//! at once (`gw_core::rate_limit::redis` builds the command and reads the
//! answer). The request waits paused; the adapter resumes or refuses it on
//! the outcome.

use gw_core::rate_limit::admission::Admission;
use gw_core::rate_limit::bill::Charge;
use gw_core::rate_limit::config::{RateLimitConfig, RedisStore};
use gw_core::rate_limit::redis::{self, RedisReply};
use gw_host::port::Host;
use proxy_wasm::types::{BufferType, MapType};

/// A call in flight, with what its answer decides.
pub struct RedisCall {
    token: u32,
    agent_id: String,
    charges: Vec<Charge>,
    /// Names the request in Redis, so a resent call is counted once.
    nonce: String,
    sent_script: bool,
}

/// Where a request stands with the store.
pub enum RedisOutcome {
    /// The call is in flight (or the answer was another call's).
    Waiting(RedisCall),
    Decided {
        agent_id: String,
        charges: Vec<Charge>,
        admission: Admission,
    },
    /// The store could not decide (no call, timeout, bad answer): the
    /// adapter applies `redisStore.onUnavailable`.
    Unavailable {
        agent_id: String,
        charges: Vec<Charge>,
    },
}

impl RedisCall {
    /// Ask the store to charge `charges`; `nonce` names the request.
    pub fn dispatch(
        h: &mut dyn Host,
        config: &RateLimitConfig,
        store: &RedisStore,
        agent_id: String,
        charges: Vec<Charge>,
        nonce: String,
    ) -> RedisOutcome {
        Self::send(h, config, store, agent_id, charges, nonce, false)
    }

    fn send(
        h: &mut dyn Host,
        config: &RateLimitConfig,
        store: &RedisStore,
        agent_id: String,
        charges: Vec<Charge>,
        nonce: String,
        with_script: bool,
    ) -> RedisOutcome {
        let windows = redis::windows(config, &charges);
        let body = redis::command_body(&windows, &nonce, with_script);
        let call = h.dispatch_http_call(
            &store.upstream.cluster,
            &store.upstream.post_headers("text/plain"),
            Some(body.as_bytes()),
            store.upstream.timeout(),
        );
        match call {
            Ok(token) => RedisOutcome::Waiting(Self {
                token,
                agent_id,
                charges,
                nonce,
                sent_script: with_script,
            }),
            Err(status) => {
                log::error!(
                    "rate_limit: cannot call cluster {}: {status:?}",
                    store.upstream.cluster
                );
                RedisOutcome::Unavailable { agent_id, charges }
            }
        }
    }

    /// The answer to the callout `token`, if it is this call's. Redis that
    /// lost the script (restart, `SCRIPT FLUSH`) gets it once with `EVAL`.
    pub fn answered(
        self,
        h: &mut dyn Host,
        config: &RateLimitConfig,
        store: &RedisStore,
        token: u32,
        body_size: usize,
    ) -> RedisOutcome {
        if token != self.token {
            return RedisOutcome::Waiting(self);
        }
        let status = gw_host::headers::get(h, MapType::HttpCallResponseHeaders, ":status");
        let body = h
            .buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let policies = redis::policies(config, &self.charges);
        let Self {
            agent_id,
            charges,
            nonce,
            sent_script,
            ..
        } = self;
        match redis::parse_reply(status.as_deref(), &body, &policies) {
            RedisReply::Decided(answer) => RedisOutcome::Decided {
                agent_id,
                charges,
                admission: answer.into_admission(),
            },
            RedisReply::NoScript if !sent_script => {
                Self::send(h, config, store, agent_id, charges, nonce, true)
            }
            other => {
                log::error!("rate_limit: redis store: {other:?}");
                RedisOutcome::Unavailable { agent_id, charges }
            }
        }
    }
}
