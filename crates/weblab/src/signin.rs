//! `weblab tour --oauth` (C37): the browser signs in to the site through
//! the world's identity provider, every leg in one trace:
//!
//! ```text
//! 0 GET  https://myapp.test/login/oauth?next=/account  303 -> id.test, state cookie set
//! 1 GET  https://id.test/authorize?…&code_challenge=…  200 sign-in and consent page
//! 2 POST https://id.test/authorize (password, Allow)   303 -> myapp.test with a code
//! 3 GET  https://myapp.test/oauth/callback?code&state  303 (the app redeemed the code
//!                                                           over its own HTTPS calls)
//! 4 GET  https://myapp.test/account                    200 signed in
//! ```
//! The browser follows the redirects and keeps the cookies; this module
//! only plays the person: it fills in the consent form once and presses
//! Allow.

use anyhow::Result;
use url::Url;
use weblab_browser::html::forms;
use weblab_browser::{Browser, BrowserError, Outgoing, Page};
use weblab_trace::{Ctx, TraceId};

use crate::config::World;

/// Who signs in where.
pub struct Plan {
    pub start: Url,
    pub email: String,
    pub password: String,
    pub provider: String,
}

/// Requests a sign-in may take before it is called a loop.
const MAX_REQUESTS: u32 = 10;

/// The sign-in of `world`'s first identity-provider account, or why
/// there is none.
pub fn plan(world: &World) -> Result<Plan> {
    let idp = world.idp.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "--oauth: this world has no identity provider (an [idp] section and its host)"
        )
    })?;
    let site = world
        .lb
        .server_names
        .first()
        .ok_or_else(|| anyhow::anyhow!("--oauth: [lb] server_names is empty"))?;
    let (_, _, local) = weblab_app::idp::IDP_USERS[0];
    Ok(Plan {
        start: Url::parse(&format!("https://{site}/login/oauth?next=/account"))?,
        email: format!("{local}@{}", idp.server_name),
        password: weblab_app::DEMO_PASSWORD.into(),
        provider: idp.server_name.clone(),
    })
}

/// Walks the sign-in; the trace and the page it ended on.
pub async fn walk(browser: &Browser, plan: &Plan) -> (TraceId, Result<Page, BrowserError>) {
    let ctx = Ctx::new_root();
    let mut consented = false;
    let ended = browser
        .walk(
            ctx,
            (&plan.start, Outgoing::default()),
            MAX_REQUESTS,
            |page| {
                // The consent page is the one whose form carries a client_id;
                // it is answered once (a second one means the first failed).
                if consented {
                    return None;
                }
                let form = forms(&page.body, &page.url)
                    .into_iter()
                    .find(|f| f.fields.iter().any(|(k, _)| k == "client_id"))?;
                consented = true;
                let mut fields = form.fields;
                for (k, v) in &mut fields {
                    match k.as_str() {
                        "email" => v.clone_from(&plan.email),
                        "password" => v.clone_from(&plan.password),
                        _ => {}
                    }
                }
                fields.push(("decision".into(), "allow".into()));
                let mut out = Outgoing::form(&fields);
                // A browser says where a form was submitted from.
                out.headers
                    .push(("Origin".into(), page.url.origin().ascii_serialization()));
                Some((form.action, out))
            },
        )
        .await;
    browser.report_connections(ctx);
    let page = ended.map(|main| Page {
        main,
        subresources: Vec::new(),
    });
    (ctx.trace, page)
}

/// Whether the walk ended signed in: on the page it asked for, with 200.
pub fn signed_in(page: &Page) -> bool {
    page.main.status == 200 && page.main.url.path() == "/account"
}
