//! clawbridge: a Pingora sidecar in front of an OpenClaw gateway. It serves
//! the gateway's OpenAI surface (chat completions, responses, models) by
//! running each turn over the gateway's native WebSocket `agent` method, and
//! forwards all other traffic, WebSocket upgrades included, unchanged.
//!
//! # How a request flows
//! 1. **Front door** ([`ingress`], [`proxy`]): the route is decided on the
//!    path the gateway itself routes on, and the client attributed as the
//!    gateway would attribute it. [`conn_guard`] and [`http_guard`] bound
//!    every connection first.
//! 2. **Route table** ([`ingress::routes`]): the one place an owned route is
//!    declared (path, method). Anything else is forwarded, with the client
//!    named in `X-Forwarded-For` ([`ingress::attribution`]).
//! 3. **Owned routes** ([`api`]): one prelude for all (attribution, `Expect`,
//!    method, bearer and lockout: [`auth`]), one error type ([`error`]); each
//!    API parses its request ([`chat`], [`responses`], [`api::models`]).
//!    Requests the native protocol cannot carry go to the gateway's own
//!    endpoint ([`api::handoff`]).
//! 4. **Turn driver** ([`turn`]): one agent turn on the shared link, from its
//!    request to its end, with deadlines, keep-alives and abort on drop.
//! 5. **Renderers** ([`chat::render`], [`responses::render`]): the turn's
//!    events as each API's SSE or JSON.
//! 6. **Gateway link** ([`gateway`]): the one multiplexed WebSocket, its
//!    wire frames, runs and calls, reconnects and secret rotation.
//!
//! Around them: [`config`] and [`reload`] (the gateway's file, followed live),
//! [`server`] (the Pingora services; [`detach`] serves owned requests off
//! Pingora's request task, [`colocated`] runs the link beside the proxy),
//! [`metrics`], [`admin`], [`drain`], [`logs`], [`upstream`].

pub mod admin;
pub mod api;
pub mod auth;
pub mod chat;
pub mod colocated;
pub mod config;
pub mod conn_guard;
pub mod detach;
pub mod drain;
pub mod error;
pub mod gateway;
pub mod head_scan;
pub mod http_guard;
pub mod ingress;
pub mod logs;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod responses;
pub mod server;
pub mod turn;

pub mod upstream;
