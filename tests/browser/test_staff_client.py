"""Unit tests of the staff pages' one request client (shared/web/staff.js ``client``), in the real headless Chromium
with the runner of es_modules.py, ``fetch`` replaced in the page by a fake that records each request and answers
what the case scripts (a Response, a network failure, or nothing until aborted).

Two configurations are pinned: the client's defaults, which are the fleet page's (services/devices/fleet/app.js
passes only its sign-out), and the nurse dashboard's (services/alerting/dashboard/api.js: its token key, its French
sentences, a 401 alone ending the session). What each page sends and says must not move with the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.browser.es_modules import modules_page, run

pytestmark = pytest.mark.browser

STAFF = "/web/staff.js"
DASHBOARD = "/dashboard/api.js"

# `fake.answer(...answers)`: the next requests' answers, in order: {status, body, statusText, headers, delay}
# (body: a string as is, anything else as JSON; delay: ms before the answer comes, unless the request is aborted
# first), "offline" (fetch rejects) or "hang" (no answer until the request is aborted).
# `fake.outcome(promise)`: what a request resolved or rejected with, as data. `fake.quickTimers(run)`: the
# client's 15 s timeout runs out at once.
FAKE = """() => {
  const realSetTimeout = globalThis.setTimeout;
  const fake = {
    calls: [],
    answer(...answers) {
      fake.calls = [];
      globalThis.fetch = (url, init) => {
        fake.calls.push({
          url, method: init.method, headers: init.headers, body: init.body ?? null,
          credentials: init.credentials, cache: init.cache,
        });
        const next = answers.shift();
        if (next === "offline") return Promise.reject(new TypeError("Failed to fetch"));
        if (next === "hang") {
          return new Promise((_, reject) =>
            init.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
        }
        const { status = 200, body = null, statusText = "", headers = {}, delay = 0 } = next;
        const text = body === null ? null : typeof body === "string" ? body : JSON.stringify(body);
        const response = () => new Response(text, { status, statusText, headers });
        if (!delay) return Promise.resolve(response());
        return new Promise((resolve, reject) => {
          const timer = realSetTimeout(() => resolve(response()), delay);
          init.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(new DOMException("aborted", "AbortError"));
          });
        });
      };
    },
    async outcome(promise) {
      try {
        return { value: await promise };
      } catch (e) {
        return { error: { isApiError: e.name === "ApiError", status: e.status, title: e.title ?? null,
          detail: e.detail, message: e.message, body: e.body ?? null, cancelled: e.cancelled === true } };
      }
    },
    async quickTimers(run) {
      globalThis.setTimeout = (callback) => realSetTimeout(callback, 0);
      try {
        return await run();
      } finally {
        globalThis.setTimeout = realSetTimeout;
      }
    },
  };
  globalThis.fake = fake;
}"""

PROBLEMS = "https://oncofollow.example/problems/"


@pytest.fixture(scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    async with modules_page(browser) as page:
        await page.evaluate(FAKE)
        yield page


@pytest.fixture(autouse=True)
async def clean_tab(page: Page) -> None:
    await page.evaluate("sessionStorage.clear()")


async def fleet(page: Page, answer: Any, call: str = "request('GET', '/v1/fleet')") -> dict[str, Any]:
    """One request of a client made as the fleet page makes it (the defaults), with a stored token, and what the
    sign-out handler was called with."""
    return await run(
        page,
        STAFF,
        f"""(async () => {{
          const store = m.tokenStore("oncofollow.fleet.staffToken");
          store.set("fleet-token");
          const signedOut = [];
          const {{ request }} = m.client(store, {{ onUnauthorized: (error) => signedOut.push(error.status) }});
          fake.answer(...arg);
          const outcome = await fake.outcome({call});
          return {{ ...outcome, signedOut, calls: fake.calls }};
        }})()""",
        answer if isinstance(answer, list) else [answer],
    )


async def dashboard(page: Page, answer: Any, call: str = "m.request('GET', '/v1/me')") -> dict[str, Any]:
    """One request of the dashboard's api.js, with a stored token, and what its sign-out handler was called with."""
    return await run(
        page,
        DASHBOARD,
        f"""(async () => {{
          m.setToken("nurse-token");
          const signedOut = [];
          m.onUnauthorized((error) => signedOut.push(error.status));
          fake.answer(...arg);
          const outcome = await fake.outcome({call});
          m.onUnauthorized(null);
          return {{ ...outcome, signedOut, calls: fake.calls }};
        }})()""",
        answer if isinstance(answer, list) else [answer],
    )


# --- what is sent ------------------------------------------------------------------------------------------------


async def test_the_fleet_page_sends_its_token_json_and_headers_without_cookies(page: Page) -> None:
    sent = await fleet(
        page,
        {"status": 201, "body": {"id": "t1"}},
        "request('POST', '/v1/tablets', { body: { serial_number: 'R9' }, headers: { 'Idempotency-Key': 'k1' } })",
    )
    assert sent["value"] == {"id": "t1"}
    assert sent["calls"] == [
        {
            "url": "/v1/tablets",
            "method": "POST",
            "headers": {
                "Accept": "application/json, application/problem+json",
                "Idempotency-Key": "k1",
                "Content-Type": "application/json",
                "Authorization": "Bearer fleet-token",
            },
            "body": '{"serial_number":"R9"}',
            "credentials": "omit",
            "cache": "no-store",
        }
    ]


async def test_without_a_token_no_authorization_is_sent_and_a_get_has_no_content_type(page: Page) -> None:
    headers = await run(
        page,
        STAFF,
        """(async () => {
          fake.answer({ status: 200, body: {} });
          await m.client(m.tokenStore("nobody")).request("GET", "/v1/me");
          return fake.calls[0].headers;
        })()""",
    )
    assert headers == {"Accept": "application/json, application/problem+json"}


async def test_the_dashboard_sends_its_token_same_origin_and_none_to_a_public_endpoint(page: Page) -> None:
    me = await dashboard(page, {"status": 200, "body": {"staff_id": "ide-1"}})
    assert me["value"] == {"staff_id": "ide-1"}
    assert me["calls"][0]["headers"]["Authorization"] == "Bearer nurse-token"
    assert me["calls"][0]["credentials"] == "same-origin"
    assert await run(page, DASHBOARD, "sessionStorage.getItem('oncofollow.staffToken')") == "nurse-token"
    public = await dashboard(page, {"status": 200, "body": {"token": "t"}}, "m.api.devToken('ide-1')")
    assert public["calls"][0]["url"] == "/v1/dashboard/dev-token"
    assert "Authorization" not in public["calls"][0]["headers"]
    resolve = await dashboard(page, {"status": 200, "body": {}}, "m.api.resolve('a 1', 'phone_call', '', 'v7')")
    assert resolve["calls"][0]["url"] == "/v1/alerts/a%201/resolve"
    assert resolve["calls"][0]["headers"]["If-Match"] == '"v7"'
    assert resolve["calls"][0]["body"] == '{"outcome":"phone_call"}'


# --- what comes back ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ({"status": 204}, {"value": None}),
        ({"status": 200, "body": ""}, {"value": None}),
        # A proxy's page in place of the JSON: a sentence on both pages, not an empty table.
        (
            {"status": 200, "body": "<html>portail</html>"},
            {"error": "Le serveur a envoyé une réponse illisible.", "title": "Réponse illisible", "status": 200},
        ),
    ],
)
async def test_an_empty_or_unreadable_answer(page: Page, answer: dict[str, Any], outcome: dict[str, Any]) -> None:
    for got in (await fleet(page, answer), await dashboard(page, answer)):
        if "value" in outcome:
            assert got["value"] == outcome["value"]
        else:
            error = got["error"]
            assert (error["detail"], error["title"], error["status"]) == (
                outcome["error"],
                outcome["title"],
                outcome["status"],
            )


def problem(kind: str, status: int, **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "body": {
            "type": PROBLEMS + kind,
            "title": kind.title(),
            "status": status,
            "detail": f"English {kind}",
            **extra,
        },
    }


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        # The API's own detail: the page makes it French by the problem's type (fleet/problems.js).
        (problem("illegal-transition", 409, state="loaned"), "English illegal-transition"),
        (problem("precondition-failed", 412), "English precondition-failed"),
        (problem("unprocessable-content", 422, pointer="/patient_id"), "English unprocessable-content"),
        # No problem to read (a proxy's page): a French sentence by status.
        (
            {"status": 502, "body": "<html>Bad Gateway</html>"},
            "Le serveur a rencontré une erreur (502). Réessayez dans un instant.",
        ),
        ({"status": 404}, "Cet élément n'existe pas (ou plus)."),
        ({"status": 401}, "Votre session n'est plus valide. Reconnectez-vous."),
        ({"status": 403}, "Votre compte n'a pas les droits pour cette action."),
        (
            {"status": 422},
            "La demande a été refusée (erreur 422) : rechargez la page. Si cela continue, prévenez le support "
            "informatique.",
        ),
    ],
)
async def test_the_fleet_page_s_refusals_carry_the_server_s_detail_and_problem(
    page: Page, answer: dict[str, Any], detail: str
) -> None:
    error = (await fleet(page, answer))["error"]
    assert error["isApiError"] and error["status"] == answer["status"]
    assert error["detail"] == detail and error["message"] == detail
    body = answer.get("body")
    assert error["body"] == (body if isinstance(body, dict) else None)


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (
            problem("alert-changed", 412),
            "L'alerte a changé depuis que vous l'avez ouverte. Vérifiez avant de clôturer.",
        ),
        (
            problem("alert-conflict", 409, alert_status="acknowledged"),
            "Quelqu'un de l'équipe a déjà pris cette alerte.",
        ),
        (problem("alert-conflict", 409, alert_status="resolved"), "Cette alerte est déjà clôturée."),
        (problem("alert-conflict", 409, alert_status="open"), "Seule une alerte clôturée peut être rouverte."),
        (problem("alert-conflict", 409), "Cette action n'est plus possible : l'alerte a changé entre-temps."),
        (problem("invalid-token", 401), "Votre session n'est plus valide. Reconnectez-vous."),
        (problem("missing-token", 401), "Votre session n'est plus valide. Reconnectez-vous."),
        # The identity provider's ID token instead of its access token: signing in again brings it back.
        (
            problem("id-token", 401),
            "Contactez le support informatique : la connexion de l'hôpital envoie un jeton d'identité au lieu d'un "
            "jeton d'accès.",
        ),
        ({"status": 401}, "Votre session n'est plus valide. Reconnectez-vous."),
        (problem("missing-role", 403), "Votre compte n'a pas les droits pour cette action."),
        (problem("wrong-token", 403), "Votre compte n'a pas les droits pour cette action."),
        ({"status": 403}, "Votre compte n'a pas les droits pour cette action."),
        (problem("not-found", 404), "Cet élément n'existe pas (ou plus)."),
        ({"status": 404}, "Cet élément n'existe pas (ou plus)."),
        (
            problem("unprocessable-content", 422, pointer="/until"),
            "La date de fin doit être aujourd'hui ou dans les 30 prochains jours.",
        ),
        (
            problem("unprocessable-content", 422, pointer="/from", max_days=366),
            "Choisissez une période de 366 jours au plus.",
        ),
        (problem("unprocessable-content", 422, pointer="/from"), "La date de début doit précéder la date de fin."),
        (problem("unprocessable-content", 422, pointer="/note"), "Vérifiez les valeurs saisies."),
        # A date the service could not read at all (a validation problem: same pointer, with `errors`) is not one
        # its own checks refused: no sentence about the range.
        (
            problem("unprocessable-content", 422, pointer="/until", errors=[{"pointer": "/until"}]),
            "Vérifiez les valeurs saisies.",
        ),
        (
            problem("unprocessable-content", 422, pointer="/from", errors=[{"pointer": "/from"}]),
            "Vérifiez les valeurs saisies.",
        ),
        (problem("service-unavailable", 503), "Le service est momentanément surchargé. Réessayez dans un instant."),
        (problem("internal-error", 500), "Le serveur a rencontré une erreur (500). Réessayez dans un instant."),
        (
            {"status": 502, "body": "<html>Bad Gateway</html>"},
            "Le serveur a rencontré une erreur (502). Réessayez dans un instant.",
        ),
        # What no sentence covers: French by its status, never the problem's English title, the status line's, or a
        # status alone (the console keeps them for the support desk).
        (
            problem("idempotency-key-reused", 409),
            "La demande a été refusée (erreur 409) : rechargez la page. Si cela continue, prévenez le support "
            "informatique.",
        ),
        (
            {"status": 429, "statusText": "Too Many Requests"},
            "Trop de demandes en peu de temps : patientez un instant, puis réessayez.",
        ),
        (
            {"status": 418},
            "La demande a été refusée (erreur 418) : rechargez la page. Si cela continue, prévenez le support "
            "informatique.",
        ),
        (
            problem("identity-provider-unavailable", 503),
            "Le service d'identité de l'hôpital ne répond pas : votre connexion n'a pas pu être vérifiée. Réessayez "
            "dans quelques secondes.",
        ),
    ],
)
async def test_the_dashboard_s_refusals_are_in_french(page: Page, answer: dict[str, Any], detail: str) -> None:
    error = (await dashboard(page, answer))["error"]
    assert error["isApiError"] and error["status"] == answer["status"]
    assert error["detail"] == detail
    body = answer.get("body")
    assert error["body"] == (body if isinstance(body, dict) else None)


async def test_the_dashboard_s_errors_are_the_shared_client_s(page: Page) -> None:
    # One ApiError for every staff page: `instanceof` holds whichever module a page imported it from.
    assert await run(
        page,
        DASHBOARD,
        """(async () => {
          const staff = await import("/web/staff.js");
          fake.answer({ status: 409 });
          const error = await m.request("GET", "/v1/me").catch((e) => e);
          return m.ApiError === staff.ApiError && error instanceof staff.ApiError;
        })()""",
    )


# --- the end of a session ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "signs_out"), [(401, True), (403, True), (409, False), (412, False), (422, False), (500, False)]
)
async def test_the_fleet_page_is_signed_out_on_401_and_403_only(page: Page, status: int, signs_out: bool) -> None:
    assert (await fleet(page, {"status": status}))["signedOut"] == ([status] if signs_out else [])


@pytest.mark.parametrize(
    ("status", "signs_out"), [(401, True), (403, False), (409, False), (412, False), (422, False), (500, False)]
)
async def test_the_dashboard_is_signed_out_on_401_only(page: Page, status: int, signs_out: bool) -> None:
    assert (await dashboard(page, {"status": status}))["signedOut"] == ([status] if signs_out else [])


async def test_a_401_to_a_public_request_signs_nobody_out(page: Page) -> None:
    assert (await dashboard(page, {"status": 401}, "m.api.devToken('ide-1')"))["signedOut"] == []


async def test_a_handler_set_later_replaces_the_first(page: Page) -> None:
    assert await run(
        page,
        STAFF,
        """(async () => {
          const heard = [];
          const staff = m.client(m.tokenStore("k"), { onUnauthorized: () => heard.push("first") });
          staff.onUnauthorized(() => heard.push("second"));
          fake.answer({ status: 401 });
          await staff.request("GET", "/v1/me").catch(() => {});
          return heard;
        })()""",
    ) == ["second"]


async def test_ending_the_session_cancels_its_requests_in_flight_and_not_the_next_ones(page: Page) -> None:
    outcome = await run(
        page,
        DASHBOARD,
        """(async () => {
          const heard = [];
          m.onUnauthorized((error) => heard.push(error.status));
          fake.answer("hang", "hang", { status: 200, body: { staff_id: "ide-2" } });
          const pending = fake.outcome(m.request("GET", "/v1/alerts/a1"));
          const publicOne = fake.outcome(m.request("POST", "/v1/dashboard/dev-token", { auth: false }));
          m.endSessionRequests();
          const cancelled = await pending;
          const next = await fake.outcome(m.request("GET", "/v1/me"));
          // The public request is nobody's session: it is still waiting for its answer.
          const waited = new Promise((resolve) => setTimeout(resolve, 50, "waiting"));
          const still = await Promise.race([publicOne.then(() => "answered"), waited]);
          m.onUnauthorized(null);
          return { cancelled: cancelled.error, next, still, heard };
        })()""",
    )
    assert outcome["cancelled"]["cancelled"] is True
    assert outcome["cancelled"]["status"] == 0
    assert outcome["cancelled"]["detail"] == "La session est terminée : la demande a été annulée."
    assert outcome["next"] == {"value": {"staff_id": "ide-2"}}
    assert outcome["still"] == "waiting"
    assert outcome["heard"] == []


# --- no answer ---------------------------------------------------------------------------------------------------


async def test_a_network_failure_and_a_timeout_in_each_page_s_words(page: Page) -> None:
    offline = await fleet(page, "offline")
    assert offline["error"]["status"] == 0
    assert offline["error"]["detail"] == "Le serveur ne répond pas. Vérifiez la connexion réseau et réessayez."
    late = await fleet(page, "hang", "fake.quickTimers(() => request('GET', '/v1/fleet'))")
    assert late["error"]["detail"] == "Le serveur ne répond pas. Vérifiez la connexion réseau et réessayez."
    assert not late["error"]["cancelled"]

    offline = await dashboard(page, "offline")
    assert offline["error"]["status"] == 0
    assert offline["error"]["detail"] == "Le serveur ne répond pas. Vérifiez la connexion réseau."
    late = await dashboard(page, "hang", "fake.quickTimers(() => m.request('GET', '/v1/me'))")
    assert late["error"]["detail"] == "Le serveur met trop de temps à répondre. Réessayez."
    assert offline["signedOut"] == late["signedOut"] == []


async def test_a_request_its_caller_aborts_is_not_said_to_be_late(page: Page) -> None:
    aborted = await dashboard(
        page,
        "hang",
        """(() => {
          const caller = new AbortController();
          const sent = m.request("GET", "/v1/me", { signal: caller.signal });
          caller.abort();
          return sent;
        })()""",
    )
    assert aborted["error"]["detail"] == "Le serveur ne répond pas. Vérifiez la connexion réseau."


# --- a binary answer (a photo) -----------------------------------------------------------------------------------

JPEG = {"status": 200, "body": "jpeg-bytes", "headers": {"Content-Type": "image/jpeg"}}
PHOTO = "m.request('GET', 'https://questionnaire.test/v1/photos/p1', { binary: ['image/jpeg'] }).then(blobInfo)"
# A Blob is no JSON: what came back, as data.
BLOB_INFO = """() => {
  globalThis.blobInfo = async (blob) =>
    ({ isBlob: blob instanceof Blob, type: blob.type, size: blob.size, text: await blob.text() });
}"""


async def test_a_binary_answer_is_a_blob_asked_with_its_type_and_the_token(page: Page) -> None:
    await page.evaluate(BLOB_INFO)
    got = await dashboard(page, JPEG, PHOTO)
    assert got["value"] == {"isBlob": True, "type": "image/jpeg", "size": 10, "text": "jpeg-bytes"}
    assert got["calls"][0]["url"] == "https://questionnaire.test/v1/photos/p1"
    assert got["calls"][0]["headers"] == {
        "Accept": "image/jpeg, application/problem+json",
        "Authorization": "Bearer nurse-token",
    }
    assert got["calls"][0]["cache"] == "no-store"


@pytest.mark.parametrize(
    ("answer", "status", "detail", "signs_out"),
    [
        # A proxy's or a portal's page where the photo was expected: a sentence, not a broken image.
        (
            {"status": 200, "body": "<html>portail</html>", "headers": {"Content-Type": "text/html"}},
            200,
            "Le serveur a envoyé une réponse illisible.",
            False,
        ),
        ({"status": 200, "body": '{"id": "p1"}', "headers": {"Content-Type": "application/json"}}, 200, None, False),
        # Refusals as every request's: an expired token ends the session, the rest say why in French.
        (problem("invalid-token", 401), 401, "Votre session n'est plus valide. Reconnectez-vous.", True),
        (problem("missing-role", 403), 403, "Votre compte n'a pas les droits pour cette action.", False),
        ({"status": 404}, 404, "Cet élément n'existe pas (ou plus).", False),
        (
            {"status": 502, "body": "<html>Bad Gateway</html>", "headers": {"Content-Type": "text/html"}},
            502,
            "Le serveur a rencontré une erreur (502). Réessayez dans un instant.",
            False,
        ),
    ],
)
async def test_a_binary_answer_of_another_type_or_a_refusal_is_an_api_error(
    page: Page, answer: dict[str, Any], status: int, detail: str | None, signs_out: bool
) -> None:
    await page.evaluate(BLOB_INFO)
    got = await dashboard(page, answer, PHOTO)
    # Asked for the image, answered with a problem (or something else): read as every request's refusals.
    assert got["calls"][0]["headers"]["Accept"] == "image/jpeg, application/problem+json"
    assert "value" not in got, got
    assert got["error"]["isApiError"] and got["error"]["status"] == status
    assert got["error"]["detail"] == (detail or "Le serveur a envoyé une réponse illisible.")
    assert got["signedOut"] == ([401] if signs_out else [])


async def test_a_request_s_own_timeout_replaces_the_default(page: Page) -> None:
    slow = {**JPEG, "delay": 300}
    late = await dashboard(
        page, slow, "m.request('GET', '/v1/photos/p1', { binary: ['image/jpeg'], timeout: 30 }).then(() => 'shown')"
    )
    assert late["error"]["detail"] == "Le serveur met trop de temps à répondre. Réessayez."
    waited = await dashboard(
        page, slow, "m.request('GET', '/v1/photos/p1', { binary: ['image/jpeg'], timeout: 5000 }).then(() => 'shown')"
    )
    assert waited["value"] == "shown"


# --- the dashboard's photos go through it ------------------------------------------------------------------------

# A message's thumbnail as the patient view draws it, its photo fetched (photos.js), and what the nurse then sees:
# the image's source, the sentence in its place, the button's label, whether the session ended.
PHOTOS = "/dashboard/photos.js"
THUMBNAIL = """(async () => {
  const api = await import("/dashboard/api.js");
  api.setToken("nurse-token");
  const signedOut = [];
  api.onUnauthorized((error) => signedOut.push(error.status));
  m.releasePhotos();
  fake.answer(...arg);
  const view = document.createElement("div");
  view.append(m.photoThumbnails({ photo_ids: ["p1"], sent_at: "2026-11-24T08:40:00Z", answered_by: "patient" }));
  await m.loadPhotos(view, "https://questionnaire.test/");
  api.onUnauthorized(null);
  const button = view.querySelector("button");
  const status = button.querySelector(".photo-status");
  const retry = button.querySelector(".photo-retry");
  return {
    src: button.querySelector("img").getAttribute("src"), status: status && status.textContent,
    label: button.getAttribute("aria-label"), disabled: button.disabled, action: button.dataset.action,
    retry: retry && retry.textContent, signedOut, calls: fake.calls,
  };
})()"""


async def test_a_photo_is_fetched_by_the_shared_client_and_shown_from_a_blob(page: Page) -> None:
    shown = await run(page, PHOTOS, THUMBNAIL, [JPEG])
    assert shown["src"].startswith("blob:")
    assert shown["status"] is None and shown["disabled"] is False
    assert shown["calls"][0]["url"] == "https://questionnaire.test/v1/photos/p1"
    assert shown["calls"][0]["headers"] == {
        "Accept": "image/jpeg, application/problem+json",
        "Authorization": "Bearer nurse-token",
    }
    assert shown["signedOut"] == []


async def test_a_photo_still_on_its_way_when_the_session_ends_is_cancelled(page: Page) -> None:
    # The next nurse at the screen gets nothing of it: the request is aborted at once, nothing is said or shown.
    shown = await run(
        page,
        PHOTOS,
        """(async () => {
          const api = await import("/dashboard/api.js");
          api.setToken("nurse-token");
          m.releasePhotos();
          fake.answer("hang");
          const view = document.createElement("div");
          view.append(m.photoThumbnails({ photo_ids: ["p1"], sent_at: "2026-11-24T08:40:00Z" }));
          const loading = m.loadPhotos(view, "https://questionnaire.test");
          await new Promise((resolve) => setTimeout(resolve, 20));
          api.endSessionRequests();
          const hung = new Promise((resolve) => setTimeout(resolve, 500, "hung"));
          const ended = await Promise.race([loading.then(() => "ended"), hung]);
          const button = view.querySelector("button");
          const status = button.querySelector(".photo-status").textContent;
          return { ended, status, src: button.querySelector("img").src };
        })()""",
    )
    assert shown == {"ended": "ended", "status": "Chargement de la photo…", "src": ""}


@pytest.mark.parametrize(
    ("answer", "sentence", "signs_out"),
    [
        # Purged with the patient's data (404), or told apart as gone (410): said so, and nothing to try again.
        ({"status": 404}, "Photo supprimée : elle n'est plus disponible.", False),
        (problem("gone", 410), "Photo supprimée : elle n'est plus disponible.", False),
        # An expired token: the session ends, as on any request (the sign-in screen says why).
        (
            problem("invalid-token", 401),
            "Photo non affichée. Votre session n'est plus valide. Reconnectez-vous.",
            True,
        ),
        (
            problem("missing-role", 403),
            "Photo non affichée. Votre compte n'a pas les droits pour cette action.",
            False,
        ),
        (
            {"status": 200, "body": "<html>portail</html>", "headers": {"Content-Type": "text/html"}},
            "Photo non affichée. Le serveur a envoyé une réponse illisible.",
            False,
        ),
        (
            {"status": 502, "body": "<html>Bad Gateway</html>"},
            "Photo non affichée. Le serveur a rencontré une erreur (502). Réessayez dans un instant.",
            False,
        ),
        ("offline", "Photo non affichée. Le serveur ne répond pas. Vérifiez la connexion réseau.", False),
    ],
)
async def test_a_photo_that_cannot_be_shown_says_why_in_french(
    page: Page, answer: Any, sentence: str, signs_out: bool
) -> None:
    shown = await run(page, PHOTOS, THUMBNAIL, [answer])
    assert shown["src"] is None
    assert shown["status"] == sentence
    assert shown["signedOut"] == ([401] if signs_out else [])
    if sentence.startswith("Photo supprimée"):
        assert (shown["disabled"], shown["retry"]) == (True, None)
        assert shown["label"] == f"Photo envoyée par le patient le 24/11/2026 à 09:40 : {sentence}"
    else:
        # Any other failure may pass: the thumbnail is the nurse's way to try again.
        assert (shown["disabled"], shown["action"], shown["retry"]) == (False, "retry-photo", "Réessayer")
        assert shown["label"] == f"Photo envoyée par le patient le 24/11/2026 à 09:40 : {sentence} Réessayer"


# The view drawn again and again (live updates, "Actualiser"), the clock moved on by `later` ms between draws, and
# "Réessayer" (`retry`): how many times the photo was asked for after each step, and how the last draw shows it.
REDRAWS = """(async () => {
  const api = await import("/dashboard/api.js");
  api.setToken("nurse-token");
  m.releasePhotos();
  const [answers, steps] = arg;
  fake.answer(...answers);
  const realNow = Date.now;
  let later = 0;
  Date.now = () => realNow() + later;
  let view = null;
  const draw = async () => {
    view = document.createElement("div");
    view.append(m.photoThumbnails({ photo_ids: ["p1"], sent_at: "2026-11-24T08:40:00Z", answered_by: "patient" }));
    await m.loadPhotos(view, "https://questionnaire.test/");
  };
  const asked = [];
  try {
    for (const step of steps) {
      if (step === "draw") await draw();
      else if (step === "two draws at once") await Promise.all([draw(), draw()]);
      else if (step === "retry") await m.retryPhoto(view, "https://questionnaire.test/", "p1");
      else later += step;
      asked.push(fake.calls.length);
    }
  } finally {
    Date.now = realNow;
  }
  const button = view.querySelector("button");
  return { asked, src: button.querySelector("img").getAttribute("src"), action: button.dataset.action };
})()"""

BUSY = {"status": 503, "delay": 50}


async def test_a_photo_that_failed_is_not_asked_for_again_on_each_redraw(page: Page) -> None:
    steps = ["two draws at once", "draw", "draw", 29_000, "draw", 2_000, "draw", "retry", "draw"]
    shown = await run(page, PHOTOS, REDRAWS, [[BUSY, BUSY, JPEG], steps])
    # One request for two draws at once; none on the redraws of the next 30 s; one once they have passed (a passing
    # fault heals), and one for "Réessayer", which shows the photo; none after it is shown.
    assert shown["asked"] == [1, 1, 1, 1, 1, 1, 2, 3, 3]
    assert shown["src"].startswith("blob:") and shown["action"] == "open-photo"


async def test_a_purged_photo_is_not_asked_for_again_while_the_view_lasts(page: Page) -> None:
    steps = ["draw", "draw", 3_600_000, "draw", "retry", "draw"]
    shown = await run(page, PHOTOS, REDRAWS, [[{"status": 404}, JPEG], steps])
    assert shown["asked"] == [1, 1, 1, 1, 1, 1]
    assert shown["src"] is None
