//! The per-request context: the stages (each filter's own HTTP context),
//! driven the way Envoy drives a filter chain.
//!
//! Requests go through the stages in chain order, responses in reverse.
//! For each direction the chain keeps, per stage, whether it has let the
//! headers through, which body callback it last saw and whether it let that
//! through, and the same for trailers; [`Chain::pump`] calls each stage in
//! order with what has arrived and it has not seen, and stops at the first
//! stage that holds (returns `Pause`). Envoy hears `Continue` only when
//! every stage has let everything through.
//!
//! While the chain holds, Envoy buffers: each body callback then reports
//! the whole body so far, and a stage before the holder sees it again,
//! grown. Our stages read the request body only at its end and copy the
//! response body only when nothing before them holds it, so they never
//! read a byte twice; a new stage must keep to that.
//!
//! A request can end with trailers instead of a last body callback: every
//! stage is wrapped in `gw_host::stage::EndAtTrailers`, which then gives it
//! the buffered body with `end_of_stream` before the trailers, so the
//! trailers cannot release a body the stage has not judged.
//!
//! A stage that answers locally ends the request: no later stage runs on
//! it. A stage waiting for a callout holds; when its callback resumes the
//! request (`Host::resume_request`), the chain goes on from that stage and
//! resumes Envoy only when every stage has let the request through.
//!
//! Every call into a stage gets the host through `gw_host::memo::Composed`
//! over this request's memo: what the stage did (replied, resumed, rewrote
//! the body) comes back from it as a value ([`run`]); nothing is global.

use gw_host::filter::Filter;
use gw_host::memo::{Composed, Effects, RequestMemo};
use gw_host::port::Host;
use gw_host::stage::EndAtTrailers;
use proxy_wasm::types::{Action, BufferType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    NotRun,
    Held,
    Passed,
}

/// What one stage has seen and let through, in one direction.
#[derive(Debug, Clone, Copy)]
struct StageFlow {
    headers: Gate,
    /// Sequence number of the last body callback it was given.
    body_seen: Option<u64>,
    /// It returned Continue for that body callback.
    body_passed: bool,
    trailers: Gate,
}

impl StageFlow {
    const NEW: StageFlow = StageFlow {
        headers: Gate::NotRun,
        body_seen: None,
        body_passed: false,
        trailers: Gate::NotRun,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

/// What has arrived from Envoy in one direction.
#[derive(Debug)]
struct Flow {
    headers: Option<(usize, bool)>,
    /// (sequence, size, end of stream) of the latest body callback.
    body: Option<(u64, usize, bool)>,
    trailers: Option<usize>,
    stages: Vec<StageFlow>,
}

impl Flow {
    fn new(n: usize) -> Self {
        Self {
            headers: None,
            body: None,
            trailers: None,
            stages: vec![StageFlow::NEW; n],
        }
    }

    fn next_body(&mut self, size: usize, end_of_stream: bool) {
        let seq = self.body.map_or(0, |(seq, _, _)| seq + 1);
        self.body = Some((seq, size, end_of_stream));
    }
}

/// Call `f` on a stage with the host as the chain shows it to stages, and
/// report what the stage did.
pub fn run<T>(
    host: &mut dyn Host,
    memo: &mut RequestMemo,
    f: impl FnOnce(&mut dyn Host) -> T,
) -> (T, Effects) {
    let mut composed = Composed::new(host, memo);
    let out = f(&mut composed);
    (out, composed.effects())
}

pub struct Chain<S: Filter = Box<dyn Filter>> {
    /// Every stage ends at trailers (`gw_host::stage`): none can let go of
    /// a body it has not judged, whatever its own trailer callback does.
    stages: Vec<EndAtTrailers<S>>,
    request: Flow,
    response: Flow,
    /// A stage answered the request itself.
    replied: bool,
    /// What the stages read from and wrote to the host (gw_host::memo).
    memo: RequestMemo,
}

impl<S: Filter> Chain<S> {
    /// A chain whose stages are the only writers of the filter-state keys
    /// `owned` (`gw_host::memo`): reads of them never go to the host.
    pub fn owning(stages: Vec<S>, owned: &'static [&'static str]) -> Self {
        let n = stages.len();
        Self {
            stages: stages.into_iter().map(EndAtTrailers::new).collect(),
            request: Flow::new(n),
            response: Flow::new(n),
            replied: false,
            memo: RequestMemo::owning(owned),
        }
    }

    /// The stage at position `k` of `direction`'s order (responses go
    /// through the stages last first).
    fn stage_at(&self, direction: Direction, k: usize) -> usize {
        match direction {
            Direction::Request => k,
            Direction::Response => self.stages.len() - 1 - k,
        }
    }

    fn note(&mut self, effects: Effects) {
        if effects.replied {
            self.replied = true;
        }
    }

    /// Give every stage, in order, what has arrived and it has not seen;
    /// `Continue` when all let everything through.
    fn pump(&mut self, h: &mut dyn Host, direction: Direction) -> Action {
        for k in 0..self.stages.len() {
            let i = self.stage_at(direction, k);
            if self.replied && direction == Direction::Request {
                return Action::Pause;
            }
            let flow = match direction {
                Direction::Request => &self.request,
                Direction::Response => &self.response,
            };
            let Some(mut st) = flow.stages.get(i).copied() else {
                continue;
            };
            let (headers, body, trailers) = (flow.headers, flow.body, flow.trailers);
            let Some(stage) = self.stages.get_mut(i) else {
                continue;
            };
            let mut effects = Effects::default();
            let mut hold = false;
            // The body's size after a stage rewrote it (the next stages
            // must read the new body whole, not the old size of it).
            let mut resized = None;
            if st.headers == Gate::NotRun {
                let Some((n, eos)) = headers else {
                    return Action::Pause;
                };
                let (action, fx) = run(h, &mut self.memo, |h| match direction {
                    Direction::Request => stage.request_headers(h, n, eos),
                    Direction::Response => stage.response_headers(h, n, eos),
                });
                effects = fx;
                st.headers = if action == Action::Continue {
                    Gate::Passed
                } else {
                    Gate::Held
                };
            }
            if let (false, Some((seq, size, eos))) = (effects.replied, body) {
                if st.body_seen != Some(seq) {
                    let (action, fx) = run(h, &mut self.memo, |h| match direction {
                        Direction::Request => stage.request_body(h, size, eos),
                        Direction::Response => stage.response_body(h, size, eos),
                    });
                    effects.replied |= fx.replied;
                    if fx.body_changed {
                        let buffer = match direction {
                            Direction::Request => BufferType::HttpRequestBody,
                            Direction::Response => BufferType::HttpResponseBody,
                        };
                        resized = Some(h.buffer_len(buffer).unwrap_or(size));
                    }
                    st.body_seen = Some(seq);
                    st.body_passed = action == Action::Continue;
                    if st.body_passed {
                        // Continue from a body callback lets the held
                        // headers go too (allow_on_headers_stop_iteration).
                        st.headers = Gate::Passed;
                    }
                }
                hold |= !st.body_passed;
            }
            // Trailers end the stream: a stage holding the body gets them
            // too, and its EndAtTrailers first gives it the whole body with
            // end_of_stream (a body that ends in trailers is judged like
            // any other).
            if let (false, Some(n)) = (effects.replied, trailers) {
                if st.trailers == Gate::NotRun {
                    let (action, fx) = run(h, &mut self.memo, |h| match direction {
                        Direction::Request => stage.request_trailers(h, n),
                        Direction::Response => stage.response_trailers(h, n),
                    });
                    effects.replied |= fx.replied;
                    st.trailers = if action == Action::Continue {
                        Gate::Passed
                    } else {
                        Gate::Held
                    };
                    if st.trailers == Gate::Passed {
                        st.headers = Gate::Passed;
                        st.body_passed = true;
                    }
                }
                hold = st.trailers == Gate::Held;
            }
            hold |= st.headers == Gate::Held;
            let flow = match direction {
                Direction::Request => &mut self.request,
                Direction::Response => &mut self.response,
            };
            if let Some(slot) = flow.stages.get_mut(i) {
                *slot = st;
            }
            if let (Some(new_size), Some((_, size, _))) = (resized, flow.body.as_mut()) {
                *size = new_size;
            }
            self.note(effects);
            if effects.replied || hold {
                return Action::Pause;
            }
        }
        Action::Continue
    }

    /// [`Self::pump`], then the callback's end for the memo (the metric
    /// increments the stages made go to the host, one per metric).
    fn pump_and_flush(&mut self, h: &mut dyn Host, direction: Direction) -> Action {
        let action = self.pump(h, direction);
        self.memo.callback_ended(h);
        action
    }

    /// A stage resumed the request it held: it has let through everything
    /// it was given; show it the body again so that it says so itself.
    fn release(&mut self, i: usize) {
        if let Some(st) = self.request.stages.get_mut(i) {
            if st.headers == Gate::Held {
                st.headers = Gate::Passed;
            }
            if st.trailers == Gate::Held {
                st.trailers = Gate::Passed;
            }
            st.body_seen = None;
        }
    }
}

impl<S: Filter> Filter for Chain<S> {
    fn request_headers(&mut self, h: &mut dyn Host, num_headers: usize, eos: bool) -> Action {
        self.request.headers = Some((num_headers, eos));
        self.pump_and_flush(h, Direction::Request)
    }

    fn request_body(&mut self, h: &mut dyn Host, body_size: usize, eos: bool) -> Action {
        self.request.next_body(body_size, eos);
        self.pump_and_flush(h, Direction::Request)
    }

    fn request_trailers(&mut self, h: &mut dyn Host, num_trailers: usize) -> Action {
        self.request.trailers = Some(num_trailers);
        self.pump_and_flush(h, Direction::Request)
    }

    fn response_headers(&mut self, h: &mut dyn Host, num_headers: usize, eos: bool) -> Action {
        self.response.headers = Some((num_headers, eos));
        self.pump_and_flush(h, Direction::Response)
    }

    fn response_body(&mut self, h: &mut dyn Host, body_size: usize, eos: bool) -> Action {
        self.response.next_body(body_size, eos);
        self.pump_and_flush(h, Direction::Response)
    }

    fn response_trailers(&mut self, h: &mut dyn Host, num_trailers: usize) -> Action {
        self.response.trailers = Some(num_trailers);
        self.pump_and_flush(h, Direction::Response)
    }

    fn call_response(&mut self, h: &mut dyn Host, token: u32, hd: usize, b: usize, t: usize) {
        let mut resumed = Vec::new();
        for (i, stage) in self.stages.iter_mut().enumerate() {
            let (_, fx) = run(h, &mut self.memo, |h| {
                stage.call_response(h, token, hd, b, t)
            });
            if fx.resumed {
                resumed.push(i);
            }
            if fx.replied {
                self.replied = true;
            }
        }
        if !self.replied && !resumed.is_empty() {
            for i in resumed {
                self.release(i);
            }
            if self.pump(h, Direction::Request) == Action::Continue {
                if let Err(status) = h.resume_request() {
                    log::warn!("gateway: cannot resume the request: {status:?}");
                }
            }
        }
        self.memo.callback_ended(h);
    }

    fn log(&mut self, h: &mut dyn Host) {
        for stage in &mut self.stages {
            run(h, &mut self.memo, |h| stage.log(h));
        }
        self.memo.callback_ended(h);
    }

    fn done(&mut self, h: &mut dyn Host) {
        for stage in &mut self.stages {
            run(h, &mut self.memo, |h| stage.done(h));
        }
        self.memo.callback_ended(h);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    //! The chain's driving, with scripted stages on the in-memory host.
    use super::*;
    use gw_host::memory::MemoryHost;
    use std::cell::RefCell;
    use std::rc::Rc;

    type Log = Rc<RefCell<Vec<String>>>;
    /// (host, event, size, end_of_stream) -> action; may reply or resume.
    type Script = Box<dyn FnMut(&mut dyn Host, &str, usize, bool) -> Action>;

    struct Scripted {
        name: &'static str,
        log: Log,
        script: Script,
    }

    impl Scripted {
        fn call(&mut self, h: &mut dyn Host, event: &str, size: usize, eos: bool) -> Action {
            let tag = if eos { "/eos" } else { "" };
            self.log
                .borrow_mut()
                .push(format!("{}.{event}({size}{tag})", self.name));
            (self.script)(h, event, size, eos)
        }
    }

    impl Filter for Scripted {
        fn request_headers(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
            self.call(h, "req_headers", n, eos)
        }
        fn request_body(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
            self.call(h, "req_body", n, eos)
        }
        fn request_trailers(&mut self, h: &mut dyn Host, n: usize) -> Action {
            self.call(h, "req_trailers", n, false)
        }
        fn response_headers(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
            self.call(h, "resp_headers", n, eos)
        }
        fn response_body(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
            self.call(h, "resp_body", n, eos)
        }
        fn response_trailers(&mut self, h: &mut dyn Host, n: usize) -> Action {
            self.call(h, "resp_trailers", n, false)
        }
        fn call_response(&mut self, h: &mut dyn Host, token: u32, _: usize, _: usize, _: usize) {
            self.call(h, "callout", token as usize, false);
        }
    }

    fn chain(stages: Vec<(&'static str, Script)>) -> (Chain<Scripted>, Log) {
        let log: Log = Rc::default();
        let stages = stages
            .into_iter()
            .map(|(name, script)| Scripted {
                name,
                log: Rc::clone(&log),
                script,
            })
            .collect();
        (Chain::owning(stages, &[]), log)
    }

    fn take(log: &Log) -> Vec<String> {
        std::mem::take(&mut *log.borrow_mut())
    }

    fn pass() -> Script {
        Box::new(|_, _, _, _| Action::Continue)
    }

    /// Like audit: buffers the request body until its end.
    fn buffer_body() -> Script {
        Box::new(|_, event, _, eos| match event {
            "req_body" if !eos => Action::Pause,
            _ => Action::Continue,
        })
    }

    /// Like the tool ACL with holdRequestHeaders: decides at the body's end.
    fn hold_until_body() -> Script {
        Box::new(|_, event, _, eos| match event {
            "req_headers" => Action::Pause,
            "req_body" if !eos => Action::Pause,
            _ => Action::Continue,
        })
    }

    #[test]
    fn a_holder_stops_later_stages_until_it_lets_go() {
        let (mut c, log) = chain(vec![
            ("audit", buffer_body()),
            ("acl", hold_until_body()),
            ("rl", pass()),
        ]);
        let mut h = MemoryHost::new();
        assert_eq!(c.request_headers(&mut h, 5, false), Action::Pause);
        assert_eq!(take(&log), ["audit.req_headers(5)", "acl.req_headers(5)"]);
        assert_eq!(c.request_body(&mut h, 10, false), Action::Pause);
        assert_eq!(take(&log), ["audit.req_body(10)"]);
        assert_eq!(c.request_body(&mut h, 20, true), Action::Continue);
        assert_eq!(
            take(&log),
            [
                "audit.req_body(20/eos)",
                "acl.req_body(20/eos)",
                "rl.req_headers(5)",
                "rl.req_body(20/eos)"
            ]
        );
    }

    #[test]
    fn a_local_reply_ends_the_request_but_not_the_response() {
        let deny: Script = Box::new(|h, event, _, _| {
            if event == "req_headers" {
                gw_host::reply::send(h, 401, &[], b"no");
                return Action::Pause;
            }
            Action::Continue
        });
        let (mut c, log) = chain(vec![("audit", pass()), ("id", deny), ("acl", pass())]);
        let mut h = MemoryHost::new();
        assert_eq!(c.request_headers(&mut h, 5, false), Action::Pause);
        assert_eq!(c.request_body(&mut h, 7, true), Action::Pause);
        assert_eq!(take(&log), ["audit.req_headers(5)", "id.req_headers(5)"]);
        assert_eq!(h.replies.len(), 1);
        assert_eq!(h.replies[0].status, 401);
        // the local reply goes back through every stage, last first
        assert_eq!(c.response_headers(&mut h, 2, false), Action::Continue);
        assert_eq!(
            take(&log),
            [
                "acl.resp_headers(2)",
                "id.resp_headers(2)",
                "audit.resp_headers(2)"
            ]
        );
    }

    #[test]
    fn a_stage_resumed_by_its_callout_lets_the_chain_go_on() {
        let waiting = Rc::new(RefCell::new(true));
        let w = Rc::clone(&waiting);
        let identity: Script = Box::new(move |h, event, _, _| match event {
            "callout" => {
                *w.borrow_mut() = false;
                h.resume_request().ok();
                Action::Continue
            }
            _ if *w.borrow() => Action::Pause,
            _ => Action::Continue,
        });
        let (mut c, log) = chain(vec![
            ("audit", buffer_body()),
            ("id", identity),
            ("acl", hold_until_body()),
        ]);
        let mut h = MemoryHost::new();
        assert_eq!(c.request_headers(&mut h, 5, false), Action::Pause);
        assert_eq!(c.request_body(&mut h, 9, true), Action::Pause);
        assert_eq!(
            take(&log),
            [
                "audit.req_headers(5)",
                "id.req_headers(5)",
                "audit.req_body(9/eos)",
                "id.req_body(9/eos)"
            ]
        );
        c.call_response(&mut h, 3, 0, 0, 0);
        assert_eq!(
            take(&log),
            [
                "audit.callout(3)",
                "id.callout(3)",
                "acl.callout(3)",
                "id.req_body(9/eos)",
                "acl.req_headers(5)",
                "acl.req_body(9/eos)"
            ]
        );
        assert!(c.request.stages.iter().all(|s| s.body_passed));
        // the stage's resume was the chain's to act on: Envoy resumed once
        assert_eq!(h.resumed, 1);
    }

    #[test]
    fn trailers_reach_a_stage_holding_the_body() {
        let (mut c, log) = chain(vec![("audit", buffer_body()), ("rl", pass())]);
        let mut h = MemoryHost::new();
        // what Envoy buffered when the trailers came
        h.set_body(BufferType::HttpRequestBody, b"{}  ");
        assert_eq!(c.request_headers(&mut h, 5, false), Action::Continue);
        assert_eq!(c.request_body(&mut h, 4, false), Action::Pause);
        assert_eq!(c.request_trailers(&mut h, 1), Action::Continue);
        assert_eq!(
            take(&log),
            [
                "audit.req_headers(5)",
                "rl.req_headers(5)",
                "audit.req_body(4)",
                "audit.req_body(4/eos)",
                "audit.req_trailers(1)",
                "rl.req_body(4)",
                "rl.req_body(4/eos)",
                "rl.req_trailers(1)"
            ]
        );
    }

    #[test]
    fn response_chunks_each_reach_every_stage_when_nobody_holds() {
        let (mut c, log) = chain(vec![("audit", pass()), ("acl", pass())]);
        let mut h = MemoryHost::new();
        c.response_headers(&mut h, 1, false);
        take(&log);
        // two chunks of the same size are two chunks
        assert_eq!(c.response_body(&mut h, 8, false), Action::Continue);
        assert_eq!(c.response_body(&mut h, 8, true), Action::Continue);
        assert_eq!(
            take(&log),
            [
                "acl.resp_body(8)",
                "audit.resp_body(8)",
                "acl.resp_body(8/eos)",
                "audit.resp_body(8/eos)"
            ]
        );
    }

    mod properties {
        //! Whatever the stages do, the chain lets a request go on only when
        //! every stage has let it through, never runs a stage before the
        //! previous one has passed the headers, runs nothing after a local
        //! reply, and lets the request go once every stage would: the
        //! guarantees a chain of real Envoy filters gives.
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone, Copy)]
        struct Policy {
            hold_headers: bool,
            buffer_body: bool,
            reply_at: Option<u8>, // 0 headers, 1 body end, 2 trailers
        }

        fn policy() -> impl Strategy<Value = Policy> {
            (
                any::<bool>(),
                any::<bool>(),
                prop_oneof![Just(None), (0u8..3).prop_map(Some)],
            )
                .prop_map(|(hold_headers, buffer_body, reply_at)| Policy {
                    hold_headers,
                    buffer_body,
                    reply_at,
                })
        }

        /// Per stage: last action, whether it has let the headers go, and
        /// whether it has been told the request ended (headers or body with
        /// end_of_stream): what a stage that judges the whole body needs
        /// before it may let anything go.
        type Seen = Rc<RefCell<Vec<(Option<Action>, bool, bool)>>>;

        fn scripted(i: usize, p: Policy, seen: &Seen) -> Script {
            let seen = Rc::clone(seen);
            Box::new(move |h, event, _, eos| {
                let phase = match event {
                    "req_headers" => 0,
                    "req_body" if eos => 1,
                    "req_trailers" => 2,
                    _ => 9,
                };
                let action = if p.reply_at == Some(phase) {
                    gw_host::reply::send(h, 403, &[], b"no");
                    Action::Pause
                } else {
                    match event {
                        "req_headers" if p.hold_headers && !eos => Action::Pause,
                        "req_body" if p.buffer_body && !eos => Action::Pause,
                        _ => Action::Continue,
                    }
                };
                let mut seen = seen.borrow_mut();
                let (_, passed_before, ended_before) = seen[i];
                seen[i] = (
                    Some(action),
                    passed_before || (action == Action::Continue && event.starts_with("req")),
                    ended_before || (eos && event.starts_with("req")),
                );
                action
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn the_chain_only_lets_go_what_every_stage_let_go(
                policies in prop::collection::vec(policy(), 1..5),
                chunks in 0usize..4,
                trailers in any::<bool>(),
            ) {
                let seen: Seen = Rc::new(RefCell::new(vec![(None, false, false); policies.len()]));
                let stages = policies
                    .iter()
                    .enumerate()
                    .map(|(i, p)| ("s", scripted(i, *p, &seen)))
                    .collect();
                let (mut c, log) = chain(stages);
                let mut h = MemoryHost::new();
                let mut replied = false;
                let check = |action: Action, c: &Chain<Scripted>, complete: bool| -> Result<(), TestCaseError> {
                    let seen = seen.borrow();
                    if action == Action::Continue {
                        // no bypass: every stage has run and its last word was Continue
                        for (i, (last, _, _)) in seen.iter().enumerate() {
                            prop_assert_eq!(*last, Some(Action::Continue), "stage {} holds", i);
                        }
                        prop_assert!(!c.replied);
                    }
                    if action == Action::Continue && complete {
                        // the request is let go whole only after every stage
                        // that judges the whole body was told it ended, even
                        // when it ended with trailers (the stages here keep
                        // the SDK's default Continue for trailers)
                        for (i, p) in policies.iter().enumerate() {
                            if p.buffer_body || p.hold_headers {
                                prop_assert!(seen[i].2, "stage {} let go unjudged", i);
                            }
                        }
                    }
                    // a stage runs only after the one before it let the headers go
                    for i in 1..seen.len() {
                        if seen[i].0.is_some() {
                            prop_assert!(seen[i - 1].1, "stage {} ran before {} passed", i, i - 1);
                        }
                    }
                    Ok(())
                };
                let no_body = chunks == 0 && !trailers;
                let mut last = c.request_headers(&mut h, 3, no_body);
                check(last, &c, no_body)?;
                replied |= c.replied;
                for k in 1..=chunks {
                    let before = log.borrow().len();
                    let end = k == chunks && !trailers;
                    last = c.request_body(&mut h, k * 10, end);
                    if replied {
                        // nothing runs on a request after a local reply
                        prop_assert_eq!(log.borrow().len(), before);
                        prop_assert_eq!(last, Action::Pause);
                    }
                    check(last, &c, end)?;
                    replied |= c.replied;
                }
                if trailers {
                    last = c.request_trailers(&mut h, 1);
                    check(last, &c, true)?;
                    replied |= c.replied;
                }
                // every stage lets go at the end of the stream: so must the chain
                if !replied {
                    prop_assert_eq!(last, Action::Continue);
                }
            }
        }
    }
}
