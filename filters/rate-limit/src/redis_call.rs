//! The Redis (webdis) store: one callout per request decides every window
//! at once (`gw_core::rate_limit::redis`); the request waits paused, and
//! only the answer resumes or refuses it.

use crate::http::{Pending, Phase, RateLimitHttp};
use gw_core::rate_limit::bill::Charge;
use gw_core::rate_limit::config::OnUnavailable;
use gw_core::rate_limit::redis::{self, RedisReply};
use gw_host::clock::now_ms;
use gw_host::port::Host;
use proxy_wasm::types::{Action, BufferType, MapType};

impl RateLimitHttp {
    pub(crate) fn ask_redis(
        &mut self,
        h: &mut dyn Host,
        agent_id: String,
        charges: Vec<Charge>,
        with_script: bool,
    ) -> Action {
        let Some(redis) = self.config.redis.clone() else {
            return self.decide_locally(h, &agent_id, &charges);
        };
        let nonce = self
            .pending
            .as_ref()
            .map(|p| p.nonce.clone())
            .unwrap_or_else(|| format!("{}.{}.{}", self.request_id, self.context_id, now_ms(h)));
        let windows = redis::windows(&self.config, &charges);
        let body = redis::command_body(&windows, &nonce, with_script);
        let call = h.dispatch_http_call(
            &redis.upstream.cluster,
            &redis.upstream.post_headers("text/plain"),
            Some(body.as_bytes()),
            redis.upstream.timeout(),
        );
        match call {
            Ok(token) => {
                self.pending = Some(Pending {
                    token,
                    agent_id,
                    charges,
                    nonce,
                    sent_script: with_script,
                });
                self.phase = Phase::Waiting;
                Action::Pause
            }
            Err(status) => {
                log::error!(
                    "rate_limit: cannot call cluster {}: {status:?}",
                    redis.upstream.cluster
                );
                self.redis_failed(h, &agent_id, &charges, redis.on_unavailable)
            }
        }
    }

    pub(crate) fn redis_failed(
        &mut self,
        h: &mut dyn Host,
        agent_id: &str,
        charges: &[Charge],
        mode: OnUnavailable,
    ) -> Action {
        self.metrics.redis_unavailable.inc(h);
        match mode {
            OnUnavailable::Local => self.decide_locally(h, agent_id, charges),
            OnUnavailable::Deny => {
                self.unavailable(h, "the shared rate-limit store is unavailable")
            }
        }
    }

    /// The answer to the callout `token`, if it is this request's.
    pub(crate) fn redis_answered(&mut self, h: &mut dyn Host, token: u32, body_size: usize) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        if pending.token != token || self.phase != Phase::Waiting {
            self.pending = Some(pending);
            return;
        }
        let Some(redis) = self.config.redis.clone() else {
            return;
        };
        let status = gw_host::headers::get(h, MapType::HttpCallResponseHeaders, ":status");
        let body = h
            .buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let policies = redis::policies(&self.config, &pending.charges);
        match redis::parse_reply(status.as_deref(), &body, &policies) {
            RedisReply::Decided(answer) => {
                let admission = answer.into_admission();
                self.apply(h, &pending.agent_id, &pending.charges, admission);
            }
            RedisReply::NoScript if !pending.sent_script => {
                let Pending {
                    agent_id,
                    charges,
                    nonce,
                    ..
                } = pending;
                self.pending = Some(Pending {
                    token: 0,
                    agent_id: agent_id.clone(),
                    charges: Vec::new(),
                    nonce,
                    sent_script: true,
                });
                self.ask_redis(h, agent_id, charges, true);
            }
            other => {
                log::error!("rate_limit: redis store: {other:?}");
                self.redis_failed(h, &pending.agent_id, &pending.charges, redis.on_unavailable);
            }
        }
    }
}
