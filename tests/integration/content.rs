//! What customers read: the staff's message reaches every channel and the
//! banner, in every language. (The table-driven content contract over
//! locales, channel families and announcement kinds is further down.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{SmtpServer, TestConfig, spawn_app};

const MESSAGE: &str = "Pay by bank transfer or cash on delivery until we are back.";

#[tokio::test]
async fn the_declarations_message_reaches_every_email_part_the_banner_and_every_preview() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let declaration = json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                             "summary": "Card payments fail.", "message": MESSAGE});
    let response = app.post("/v1/crises", &declaration).await;
    assert_eq!(response.status(), 201);

    let mails = smtp.wait_for(3, Duration::from_secs(10)).await;
    for mail in &mails {
        assert!(mail.text().contains(MESSAGE), "text part: {}", mail.text());
        assert!(mail.html().contains(MESSAGE), "HTML part: {}", mail.html());
    }
    let banner = app.banner("en").await;
    assert_eq!(banner["crises"][0]["message"], MESSAGE);
    assert_eq!(banner["crises"][0]["summary"], "Card payments fail.");
    assert_eq!(banner["status_url"], "https://status.example.com");

    for channel in ["email", "sms", "social", "chat"] {
        let mut request = declaration.clone();
        request["channel"] = json!(channel);
        request["lang"] = json!("en");
        let body: Value = app
            .post("/v1/preview", &request)
            .await
            .json()
            .await
            .expect("JSON");
        let text = body["previews"][0]["text"].as_str().expect("text");
        assert!(text.contains(MESSAGE), "{channel}: {text}");
    }
}

fn mail_to<'a>(
    mails: &'a [crate::support::smtp::Received],
    address: &str,
) -> &'a crate::support::smtp::Received {
    mails
        .iter()
        .rev()
        .find(|m| m.to.iter().any(|to| to == address))
        .unwrap_or_else(|| panic!("no mail to {address}"))
}

#[tokio::test]
async fn an_update_that_would_leave_a_locale_stale_is_refused_naming_it_unless_it_says_fall_back() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let response = app
        .post(
            "/v1/crises",
            &json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                    "summary": "Card payments fail.", "message": "Pay by bank transfer.",
                    "localized": {"bn": {"title": "পেমেন্ট বন্ধ", "summary": "কার্ড পেমেন্ট ব্যর্থ।",
                                         "message": "ব্যাংক ট্রান্সফারে পেমেন্ট করুন।"},
                                  "eo": {"title": "Pagoj ne funkcias"}}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.expect("JSON")["crisis"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mails = smtp.wait_for(3, Duration::from_secs(10)).await;
    let bengali = mail_to(&mails, "rahim@example.org");
    assert!(
        bengali.text().contains("ব্যাংক ট্রান্সফারে পেমেন্ট করুন।"),
        "the Bengali message reaches Bengali readers: {}",
        bengali.text()
    );
    assert!(!bengali.text().contains("Pay by bank transfer."));

    // The API: a new title and summary in English only.
    let retitle = json!({"title": "Payments work again", "summary": "Card payments are back."});
    let path = format!("/v1/crises/{id}/updates");
    let refused = app.post(&path, &retitle).await;
    assert_eq!(refused.status(), 422);
    let problem = refused.text().await.expect("body");
    assert!(
        problem.contains("bn, eo") && problem.contains("fall_back"),
        "{problem}"
    );
    assert_eq!(app.banner("bn").await["crises"][0]["title"], "পেমেন্ট বন্ধ");

    // The CLI says the same, as a usage error, and changes nothing.
    let cli = crate::cli::crisisd(
        &app,
        &[
            "update",
            &id,
            "--title",
            "Payments work again",
            "--summary",
            "Card payments are back.",
        ],
    )
    .await;
    assert_eq!(cli.status.code(), Some(2), "{}", crate::cli::stderr(&cli));
    assert!(
        crate::cli::stderr(&cli).contains("--fall-back"),
        "{}",
        crate::cli::stderr(&cli)
    );

    // New Bengali text, Esperanto falling back to English.
    let cli = crate::cli::crisisd(
        &app,
        &[
            "update",
            &id,
            "--title",
            "Payments work again",
            "--summary",
            "Card payments are back.",
            "--localized",
            "bn.title=পেমেন্ট আবার চালু",
            "--localized",
            "bn.summary=কার্ড পেমেন্ট আবার কাজ করছে।",
            "--fall-back",
        ],
    )
    .await;
    assert!(cli.status.success(), "{}", crate::cli::stderr(&cli));
    let mails = smtp.wait_for(6, Duration::from_secs(10)).await;
    let bengali = mail_to(&mails, "rahim@example.org");
    assert!(
        bengali.text().contains("পেমেন্ট আবার চালু")
            && bengali.text().contains("কার্ড পেমেন্ট আবার কাজ করছে।"),
        "{}",
        bengali.text()
    );
    assert!(!bengali.text().contains("পেমেন্ট বন্ধ"), "{}", bengali.text());
    let esperanto = mail_to(&mails, "ludoviko@example.net");
    assert!(
        esperanto.text().contains("Payments work again"),
        "{}",
        esperanto.text()
    );
    assert_eq!(
        app.banner("bn").await["crises"][0]["title"],
        "পেমেন্ট আবার চালু"
    );
    assert_eq!(
        app.banner("eo").await["crises"][0]["title"],
        "Payments work again"
    );
}

#[tokio::test]
async fn a_message_can_be_given_per_locale_and_needs_one_in_the_default_language() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let refused = app
        .post(
            "/v1/crises",
            &json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                    "summary": "Card payments fail.",
                    "localized": {"eo": {"message": "Pagu per banka ĝiro."}}}),
        )
        .await;
    assert_eq!(refused.status(), 400);
    let accepted = app
        .post(
            "/v1/crises",
            &json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                    "summary": "Card payments fail.", "message": MESSAGE,
                    "localized": {"eo": {"message": "Pagu per banka ĝiro."}}}),
        )
        .await;
    assert_eq!(accepted.status(), 201);
    let mails = smtp.wait_for(3, Duration::from_secs(10)).await;
    let esperanto = mail_to(&mails, "ludoviko@example.net");
    assert!(esperanto.text().contains("Pagu per banka ĝiro."));
    assert!(!esperanto.text().contains(MESSAGE));
    assert!(
        mail_to(&mails, "rahim@example.org")
            .text()
            .contains(MESSAGE)
    );
    assert_eq!(
        app.banner("eo").await["crises"][0]["message"],
        "Pagu per banka ĝiro."
    );
}

// ---------------------------------------------------------------------------
// The content contract: every locale x channel family x announcement kind,
// rendered from the shipped templates and the example config's directory
// and resources, with realistic crisis text in each language.
// ---------------------------------------------------------------------------

mod contract {
    use std::path::Path;

    use chrono::{TimeZone, Utc};
    use crisisd::channels::standard_profile;
    use crisisd::config::Settings;
    use crisisd::domain::directory::ContactView;
    use crisisd::domain::follow_up::{FollowUpSpec, Library, Phase, Topic};
    use crisisd::domain::{
        AnnouncementKind, Crisis, CrisisId, Kind, LocalizedText, Severity, Status, Translations,
    };
    use crisisd::message::sms;
    use crisisd::render::{
        CompanyView, Form, Glossary, LocaleStrings, RenderContext, Renderer, TextFamily,
    };

    /// Realistic crisis text, as comms staff would write it in each language.
    struct Text {
        locale: &'static str,
        title: &'static str,
        summary: &'static str,
        message: &'static str,
    }

    const TEXTS: [Text; 3] = [
        Text {
            locale: "en",
            title: "Card payments are failing",
            summary: "Card payments fail for most customers since 09:10; cash on delivery still works.",
            message: "Pay by bank transfer until we are back; no order will be cancelled.",
        },
        Text {
            locale: "bn",
            title: "কার্ড পেমেন্ট কাজ করছে না",
            summary: "০৯:১০ থেকে বেশিরভাগ গ্রাহকের কার্ড পেমেন্ট ব্যর্থ হচ্ছে; ক্যাশ অন ডেলিভারি চালু আছে।",
            message: "আমরা ফিরে না আসা পর্যন্ত ব্যাংক ট্রান্সফারে পেমেন্ট করুন; কোনো অর্ডার বাতিল হবে না।",
        },
        Text {
            locale: "eo",
            title: "Kartpagoj malsukcesas",
            summary: "Ekde 09:10 kartpagoj malsukcesas por plej multaj klientoj; pago ĉe livero ankoraŭ funkcias.",
            message: "Pagu per banka ĝiro ĝis ni revenos; neniu mendo estos nuligita.",
        },
    ];

    /// What a reader sees, by channel family and form.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Shown {
        EmailText,
        EmailHtml,
        Long(TextFamily),
        Short(TextFamily),
    }

    const FORMS: [Shown; 8] = [
        Shown::EmailText,
        Shown::EmailHtml,
        Shown::Long(TextFamily::Sms),
        Shown::Short(TextFamily::Sms),
        Shown::Long(TextFamily::Social),
        Shown::Short(TextFamily::Social),
        Shown::Long(TextFamily::Chat),
        Shown::Short(TextFamily::Chat),
    ];

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Subject {
        Announcement(AnnouncementKind),
        FollowUp(Topic),
    }

    const SUBJECTS: [Subject; 8] = [
        Subject::Announcement(AnnouncementKind::Initial),
        Subject::Announcement(AnnouncementKind::Update),
        Subject::Announcement(AnnouncementKind::Resolved),
        Subject::FollowUp(Topic::Resources),
        Subject::FollowUp(Topic::SelfCare),
        Subject::FollowUp(Topic::StatusRecap),
        Subject::FollowUp(Topic::CheckIn),
        Subject::FollowUp(Topic::Satisfaction),
    ];

    /// The parts of the crisis text a subject's long forms must carry: an
    /// announcement all three; a status recap the latest message; other
    /// follow-ups (resources, self-care, check-in, survey) the title.
    fn wanted(subject: Subject) -> (bool, bool) {
        match subject {
            Subject::Announcement(_) => (true, true),
            Subject::FollowUp(Topic::StatusRecap) => (false, true),
            Subject::FollowUp(_) => (false, false),
        }
    }

    /// Which optional parts a short form carries at `room`, as the
    /// templates document it: (summary, message).
    fn short_parts(subject: Subject, room: u8) -> (bool, bool) {
        match subject {
            Subject::Announcement(AnnouncementKind::Initial) => (room >= 1, room >= 2),
            Subject::Announcement(AnnouncementKind::Update) => (room >= 2, room >= 1),
            Subject::Announcement(_) => (room >= 2, room >= 1),
            Subject::FollowUp(_) => (false, false),
        }
    }

    const EMERGENCY_LINE: &str = "+1 555 0100";

    /// HTML as a reader sees it: the entities minijinja writes decoded.
    fn unescape_html(html: &str) -> String {
        html.replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    /// How much of the realistic text each announcement's short form
    /// carries (see `short_parts`), from the channel family's tightest
    /// standard limit (SMS: 3 segments; social: Bluesky's 300 graphemes;
    /// chat: Teams' and Slack's), measured in the encoding sent: English
    /// SMS is GSM-7, Bengali UCS-2, Esperanto UCS-2 for its ĝ and ĉ.
    const SHORT_ROOMS: [(&str, AnnouncementKind, TextFamily, u8); 27] = {
        use AnnouncementKind::{Initial, Resolved, Update};
        use TextFamily::{Chat, Sms, Social};
        [
            ("en", Initial, Sms, 3),
            ("en", Initial, Social, 2),
            ("en", Initial, Chat, 3),
            ("en", Update, Sms, 3),
            ("en", Update, Social, 2),
            ("en", Update, Chat, 3),
            ("en", Resolved, Sms, 3),
            ("en", Resolved, Social, 2),
            ("en", Resolved, Chat, 3),
            ("bn", Initial, Sms, 1),
            ("bn", Initial, Social, 3),
            ("bn", Initial, Chat, 3),
            ("bn", Update, Sms, 1),
            ("bn", Update, Social, 3),
            ("bn", Update, Chat, 3),
            ("bn", Resolved, Sms, 0),
            ("bn", Resolved, Social, 3),
            ("bn", Resolved, Chat, 3),
            ("eo", Initial, Sms, 1),
            ("eo", Initial, Social, 2),
            ("eo", Initial, Chat, 3),
            ("eo", Update, Sms, 1),
            ("eo", Update, Social, 2),
            ("eo", Update, Chat, 3),
            ("eo", Resolved, Sms, 1),
            ("eo", Resolved, Social, 1),
            ("eo", Resolved, Chat, 3),
        ]
    };

    struct World {
        renderer: Renderer,
        settings: Settings,
        library: Library,
    }

    fn world() -> World {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let settings =
            Settings::load(&root.join("config/crisisd.example.toml")).expect("example config");
        let renderer = Renderer::load(&root.join("templates"), "en").expect("templates");
        let locales: Vec<String> = renderer.locales().map(str::to_owned).collect();
        let library =
            Library::load(&settings.follow_ups, "en", &locales).expect("the example's resources");
        World {
            renderer,
            settings,
            library,
        }
    }

    fn crisis(subject: Subject) -> Crisis {
        let resolved = matches!(
            subject,
            Subject::Announcement(AnnouncementKind::Resolved)
                | Subject::FollowUp(Topic::Satisfaction)
        );
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 14, 10, 0).unwrap();
        let localized: Translations = TEXTS[1..]
            .iter()
            .map(|text| {
                (
                    text.locale.to_owned(),
                    LocalizedText {
                        title: Some(text.title.to_owned()),
                        summary: Some(text.summary.to_owned()),
                        message: Some(text.message.to_owned()),
                    },
                )
            })
            .collect();
        Crisis {
            id: CrisisId::new(),
            kind: Kind::Outage,
            severity: Severity::Critical,
            title: TEXTS[0].title.into(),
            summary: TEXTS[0].summary.into(),
            localized,
            status: if resolved {
                Status::Resolved
            } else {
                Status::Declared
            },
            version: 2,
            last_message: Some(TEXTS[0].message.into()),
            declared_at: at,
            updated_at: at,
            resolved_at: resolved.then_some(at),
            drill: false,
            selection: Default::default(),
        }
    }

    fn context(world: &World, text: &Text, subject: Subject) -> RenderContext {
        let crisis = crisis(subject);
        let kind = match subject {
            Subject::Announcement(kind) => kind,
            Subject::FollowUp(_) => AnnouncementKind::FollowUp,
        };
        let now = crisis.declared_at;
        let company = CompanyView {
            name: world.settings.company.name.clone(),
            status_url: world.settings.company.status_url.clone(),
        };
        // The reader is in Dhaka: every entry's hours in Dhaka time, the
        // entry's own beside.
        let reader = ("Rahim", chrono_tz::Asia::Dhaka);
        let contacts = world.renderer.contacts(
            &world.settings.directory,
            text.locale,
            Some(reader.1),
            now,
            &Default::default(),
        );
        let mut ctx = RenderContext::new(
            text.locale,
            company,
            &crisis,
            kind,
            Some(reader),
            contacts,
            now,
        );
        if let Subject::FollowUp(topic) = subject {
            let spec = FollowUpSpec {
                plan: "default".into(),
                step: "contract".into(),
                phase: if topic == Topic::Satisfaction {
                    Phase::AfterResolution
                } else {
                    Phase::Active
                },
                topic,
                categories: Vec::new(),
                channels: Vec::new(),
                locales: Vec::new(),
                regions: Vec::new(),
                local_at: None,
            };
            ctx.follow_up = Some(world.library.follow_up_view(
                &spec,
                crisis.kind,
                text.locale,
                None,
            ));
        }
        ctx
    }

    /// A rendered form and, for a short form, the room it was sent with.
    fn render(world: &World, form: Shown, ctx: &RenderContext) -> (String, Option<u8>) {
        match form {
            Shown::EmailText => (world.renderer.render_email(ctx).expect("email").text, None),
            Shown::EmailHtml => (world.renderer.render_email(ctx).expect("email").html, None),
            Shown::Long(family) => (
                world
                    .renderer
                    .render_text(family, Form::Long, ctx)
                    .expect("long form"),
                None,
            ),
            Shown::Short(family) => {
                let profile = standard_profile(family.as_str(), "en").expect("profile");
                let sent = world
                    .renderer
                    .draft(&profile, Form::Short, ctx)
                    .expect("short form");
                assert!(
                    sent.measurement.fits,
                    "{} {:?}: the short form must fit: {}",
                    ctx.locale, family, sent.measurement
                );
                // The fullest room whose rendering fits, measured as sent.
                let measured = |room: u8| {
                    let bare = RenderContext {
                        room,
                        ..ctx.clone()
                    };
                    let raw = world
                        .renderer
                        .render_text(family, Form::Short, &bare)
                        .expect("short form");
                    let sent = if family == TextFamily::Sms {
                        sms::prefer_gsm7(&raw).into_owned()
                    } else {
                        raw.clone()
                    };
                    (raw, profile.limit.measure(&sent).fits, sent)
                };
                let room = (0..=3u8)
                    .rev()
                    .find(|room| measured(*room).1)
                    .expect("fits at room 0");
                let (raw, _, text) = measured(room);
                assert_eq!(
                    sent.text(),
                    text,
                    "compose sends the fullest short form that fits"
                );
                (raw, Some(room))
            }
        }
    }

    #[test]
    fn every_locale_channel_and_kind_carries_what_the_reader_needs() {
        let world = world();
        let mut problems = Vec::new();
        for text in &TEXTS {
            for subject in SUBJECTS {
                let ctx = context(&world, text, subject);
                for form in FORMS {
                    let (rendered, room) = render(&world, form, &ctx);
                    let readable = if form == Shown::EmailHtml {
                        unescape_html(&rendered)
                    } else {
                        rendered.clone()
                    };
                    let mut missing = Vec::new();
                    let mut expect = |what: &str, needle: &str, wanted: bool| {
                        if readable.contains(needle) != wanted {
                            let verb = if wanted { "lacks" } else { "should not carry" };
                            missing.push(format!("{verb} the {what} ({needle})"));
                        }
                    };
                    expect("title", text.title, true);
                    expect("emergency line", EMERGENCY_LINE, true);
                    let (summary, message) = match room {
                        Some(room) => short_parts(subject, room),
                        None => wanted(subject),
                    };
                    if matches!(subject, Subject::Announcement(_)) || summary {
                        expect("summary", text.summary, summary);
                    }
                    if matches!(subject, Subject::Announcement(_)) || message {
                        expect("message", text.message, message);
                    }
                    if let Some(room) = room {
                        expect("status link", &world.settings.company.status_url, true);
                        if let (Subject::Announcement(kind), Shown::Short(family)) = (subject, form)
                        {
                            let pinned = SHORT_ROOMS
                                .iter()
                                .find(|(l, k, f, _)| (*l, *k, *f) == (text.locale, kind, family))
                                .map(|(.., room)| *room);
                            if pinned != Some(room) {
                                missing.push(format!("carries room {room}, pinned {pinned:?}"));
                            }
                        }
                    } else {
                        let your_time = &world.renderer.strings(text.locale).hours.your_time;
                        for contact in &ctx.contacts {
                            expect("best-for", &contact.best_for, true);
                            expect("hours", &contact.hours, true);
                            let entry =
                                world.settings.directory.iter().find(|e| e.id == contact.id);
                            if let Some(entry) = entry.filter(|e| {
                                !e.hours.always_open
                                    && e.hours.text.is_empty()
                                    && e.hours.time_zone != chrono_tz::Asia::Dhaka
                            }) {
                                let zone = entry.hours.time_zone.name();
                                let local = format!("{your_time} (");
                                let zoned =
                                    contact.hours.contains(&local) && contact.hours.contains(zone);
                                expect(
                                    "hours in the reader's zone, the entry's beside",
                                    &local,
                                    zoned,
                                );
                            }
                        }
                    }
                    if !missing.is_empty() {
                        let room = room.map(|r| format!(" (room {r})")).unwrap_or_default();
                        problems.push(format!(
                            "{} {subject:?} {form:?}{room}: {}\n{}\n",
                            text.locale,
                            missing.join("; "),
                            if problems.len() < 5 {
                                readable.as_str()
                            } else {
                                ""
                            }
                        ));
                    }
                }
            }
        }
        assert!(
            problems.is_empty(),
            "{} problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }

    /// The banner, as served to each language, for the declaration and
    /// for an update: the locale's title, summary and message, the
    /// emergency line, and every contact's best-for and hours.
    #[tokio::test]
    async fn the_banner_carries_the_text_in_every_locale_for_every_active_kind() {
        let smtp = crate::support::SmtpServer::start().await;
        let app = crate::support::spawn_app(crate::support::TestConfig::new(smtp.port())).await;
        let localized = |suffix: &str| {
            let mut map = serde_json::Map::new();
            for text in &TEXTS[1..] {
                map.insert(
                    text.locale.to_owned(),
                    serde_json::json!({"title": format!("{}{suffix}", text.title),
                                       "summary": format!("{}{suffix}", text.summary),
                                       "message": format!("{}{suffix}", text.message)}),
                );
            }
            serde_json::Value::Object(map)
        };
        let declared = app
            .post(
                "/v1/crises",
                &serde_json::json!({"kind": "outage", "severity": "critical",
                    "title": TEXTS[0].title, "summary": TEXTS[0].summary,
                    "message": TEXTS[0].message, "localized": localized("")}),
            )
            .await;
        assert_eq!(declared.status(), 201);
        let id = declared.json::<serde_json::Value>().await.expect("JSON")["crisis"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let update = serde_json::json!({"title": format!("{} (2)", TEXTS[0].title),
            "summary": format!("{} (2)", TEXTS[0].summary),
            "message": format!("{} (2)", TEXTS[0].message), "localized": localized(" (2)")});
        for suffix in ["", " (2)"] {
            if !suffix.is_empty() {
                let updated = app.post(&format!("/v1/crises/{id}/updates"), &update).await;
                assert_eq!(updated.status(), 200);
            }
            for text in &TEXTS {
                let banner = app.banner(text.locale).await;
                let crisis = &banner["crises"][0];
                for (field, want) in [
                    ("title", text.title),
                    ("summary", text.summary),
                    ("message", text.message),
                ] {
                    assert_eq!(
                        crisis[field],
                        format!("{want}{suffix}"),
                        "{} banner {field}",
                        text.locale
                    );
                }
                let contacts = banner["contacts"].as_array().expect("contacts");
                assert!(
                    contacts
                        .iter()
                        .any(|c| c["emergency"] == true && c["address"] == EMERGENCY_LINE),
                    "{banner:#}"
                );
                for contact in contacts {
                    for field in ["best_for", "hours", "label"] {
                        assert!(
                            contact[field].as_str().is_some_and(|v| !v.is_empty()),
                            "{} banner contact {field}: {contact}",
                            text.locale
                        );
                    }
                }
                assert_eq!(banner["status_url"], "https://status.example.com");
            }
        }
    }

    /// Wording a reader notices: no doubled full stop after a company
    /// name ending in one ("Example Co.."), an all-clear subject that says
    /// what is resolved, one Esperanto word for "update" everywhere.
    #[test]
    fn the_wording_reads_right_in_every_language_and_form() {
        let world = world();
        assert!(
            world.settings.company.name.ends_with('.'),
            "the case at hand"
        );
        for text in &TEXTS {
            for subject in SUBJECTS {
                let ctx = context(&world, text, subject);
                for form in FORMS {
                    let (rendered, _) = render(&world, form, &ctx);
                    let rendered = unescape_html(&rendered);
                    assert!(
                        !rendered.contains(".."),
                        "{} {subject:?} {form:?}: {rendered}",
                        text.locale
                    );
                    assert!(!rendered.contains("Aktualigo"), "{rendered}");
                    if text.locale == "eo"
                        && subject == Subject::Announcement(AnnouncementKind::Update)
                    {
                        assert!(rendered.contains("Ĝisdatigo"), "{form:?}: {rendered}");
                    }
                }
            }
        }
        let resolved = context(
            &world,
            &TEXTS[0],
            Subject::Announcement(AnnouncementKind::Resolved),
        );
        let subject = world
            .renderer
            .render_email(&resolved)
            .expect("email")
            .subject;
        assert_eq!(
            subject,
            "All clear: “Card payments are failing” is resolved – Example Co."
        );
    }

    /// Whether `source` has `word` standing alone (no letter, mark or digit
    /// either side: "Update" but not "Updates").
    fn has_word(source: &str, word: &str) -> bool {
        source.match_indices(word).any(|(at, _)| {
            let before = source[..at].chars().next_back();
            let after = source[at + word.len()..].chars().next();
            [before, after]
                .into_iter()
                .all(|c| c.is_none_or(|c| !c.is_alphanumeric()))
        })
    }

    /// A template's source without its `{# comments #}`.
    fn without_comments(source: &str) -> String {
        let mut out = String::new();
        let mut rest = source;
        while let Some(start) = rest.find("{#") {
            out.push_str(&rest[..start]);
            rest = rest[start..]
                .find("#}")
                .map_or("", |end| &rest[start + end + 2..]);
        }
        out.push_str(rest);
        out
    }

    fn templates_of(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("templates") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                templates_of(&path, found);
            } else if path.extension().is_some_and(|e| e == "j2") {
                found.push(path);
            }
        }
    }

    /// Whether `text` has `word` in any case: a glossary word starts a
    /// heading capitalised and sits lowercase inside a sentence.
    fn mentions(text: &str, word: &str) -> bool {
        text.to_lowercase().contains(&word.to_lowercase())
    }

    /// The words the code itself shows (hours, banner, feeds) carry the
    /// glossary's word and none it avoids, so that the banner and the feeds
    /// name each thing as the messages do.
    fn code_string_problems(locale: &str, strings: &LocaleStrings) -> Vec<String> {
        let g = &strings.glossary;
        let (hours, banner) = (&strings.hours, &strings.banner);
        let pairs = [
            ("[hours] always_open", &hours.always_open, &g.always_open),
            ("[hours] your_time", &hours.your_time, &g.your_time),
            ("[hours] unavailable", &hours.unavailable, &g.unavailable),
            ("[banner] emergency", &banner.emergency, &g.emergency),
            ("[banner] open_now", &banner.open_now, &g.open_now),
            ("[banner] closed_now", &banner.closed_now, &g.closed_now),
            ("[banner] always_open", &banner.always_open, &g.always_open),
            ("[banner] unavailable", &banner.unavailable, &g.unavailable),
            ("[publish] updated", &strings.publish.updated, &g.update),
        ];
        let mut problems = Vec::new();
        for (what, code, word) in pairs {
            if !mentions(code, word) {
                problems.push(format!("{locale}: {what} is `{code}`, not `{word}`"));
            }
            for variant in g.avoid.iter().filter(|v| mentions(code, v)) {
                problems.push(format!("{locale}: {what} has the variant `{variant}`"));
            }
        }
        problems
    }

    /// No template of `locale` writes a glossary word itself (it prints
    /// `glossaries.<locale>.<key>`), and none has a variant the glossary
    /// avoids, even in a branch the rendered cases never take. The
    /// emergency word and "your time" sit inside sentences ("call your
    /// local emergency number"), so for them only the variants are checked.
    fn source_problems(locale: &str, g: &Glossary) -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut files = Vec::new();
        templates_of(&root.join(locale), &mut files);
        assert!(files.len() > 40, "{locale}: {} templates", files.len());
        let mut problems = Vec::new();
        for file in &files {
            let source = without_comments(&std::fs::read_to_string(file).expect("template"));
            let file = file.display();
            for (key, word) in g.words() {
                if !matches!(key, "emergency" | "your_time") && has_word(&source, word) {
                    problems.push(format!(
                        "{file}: writes `{word}` itself; use glossaries.{locale}.{key}"
                    ));
                }
            }
            for variant in g.avoid.iter().filter(|v| mentions(&source, v)) {
                problems.push(format!("{file}: the variant `{variant}`"));
            }
        }
        problems
    }

    /// Every form of `subject` in `text`'s locale as a reader sees it, by
    /// form name, with the banner while the crisis is active.
    fn rendered_forms(
        world: &World,
        ctx: &RenderContext,
        subject: Subject,
    ) -> Vec<(String, String)> {
        let mut rendered: Vec<(String, String)> = FORMS
            .iter()
            .map(|form| {
                let (out, _) = render(world, *form, ctx);
                (format!("{form:?}"), unescape_html(&out))
            })
            .collect();
        if matches!(subject, Subject::Announcement(kind) if kind != AnnouncementKind::Resolved) {
            let banner = world.renderer.render_banner(ctx).expect("banner");
            rendered.push(("banner".into(), banner));
        }
        rendered
    }

    /// The glossary's word for where a contact stands now.
    fn status_word<'g>(g: &'g Glossary, contact: &ContactView) -> &'g str {
        if !contact.available {
            &g.unavailable
        } else if contact.always_open {
            &g.always_open
        } else if contact.open_now {
            &g.open_now
        } else {
            &g.closed_now
        }
    }

    /// What one rendered form gets wrong against the glossary: a variant
    /// it avoids; no emergency word (every message carries the emergency
    /// route; the banner's headline leaves it to the contact list); an
    /// update or all-clear without its word; a long form listing a
    /// contact's status in other words.
    fn form_problems(
        g: &Glossary,
        ctx: &RenderContext,
        subject: Subject,
        (form, out): &(String, String),
    ) -> Vec<String> {
        let at = format!("{} {subject:?} {form}", ctx.locale);
        let mut problems: Vec<String> = g
            .avoid
            .iter()
            .filter(|variant| mentions(out, variant))
            .map(|variant| format!("{at}: the variant `{variant}`"))
            .collect();
        if form != "banner" && !mentions(out, &g.emergency) {
            problems.push(format!("{at}: lacks `{}`", g.emergency));
        }
        let headline = match subject {
            Subject::Announcement(AnnouncementKind::Update) => Some(&g.update),
            Subject::Announcement(AnnouncementKind::Resolved) => Some(&g.all_clear),
            _ => None,
        };
        if let Some(word) = headline.filter(|word| !out.contains(word.as_str())) {
            problems.push(format!("{at}: lacks `{word}`"));
        }
        // The all-clear's email lists the channels without their status:
        // nothing is urgent any more.
        let lists_statuses = match form.as_str() {
            "Long(Chat)" => matches!(subject, Subject::Announcement(_)),
            "EmailText" => {
                matches!(subject, Subject::Announcement(kind) if kind != AnnouncementKind::Resolved)
            }
            _ => false,
        };
        if lists_statuses {
            for contact in &ctx.contacts {
                let word = status_word(g, contact);
                if !out.contains(word) {
                    problems.push(format!("{at}: {} is not `{word}`", contact.id));
                }
            }
        }
        problems
    }

    /// Language care: each locale's glossary (`[glossary]` of its
    /// strings.toml) is the one word for update, all clear, emergency,
    /// open now, ...: the code's own strings carry it, no template of the
    /// locale writes it itself, every form of every announcement and
    /// follow-up uses it where the thing is named, and no variant the
    /// glossary avoids (eo "Aktualigo" beside "Ĝisdatigo") appears in a
    /// template or a message.
    #[test]
    fn every_locale_names_each_thing_with_its_glossarys_word_and_never_a_variant() {
        let world = world();
        let mut problems = Vec::new();
        for text in &TEXTS {
            let strings = world.renderer.strings(text.locale);
            let g = &strings.glossary;
            assert_ne!(
                g,
                &Glossary::default(),
                "{} has its own glossary",
                text.locale
            );
            assert!(
                !g.avoid.is_empty(),
                "{} lists variants to avoid",
                text.locale
            );
            problems.extend(code_string_problems(text.locale, strings));
            problems.extend(source_problems(text.locale, g));
            for subject in SUBJECTS {
                let ctx = context(&world, text, subject);
                for form in &rendered_forms(&world, &ctx, subject) {
                    problems.extend(form_problems(g, &ctx, subject, form));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "{} problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }

    /// Esperanto without its accented letters is GSM-7, and its short SMS
    /// is measured so: 3 segments of 153 give room for the summary, the
    /// message and the best channel, where UCS-2 would allow 201 units.
    #[test]
    fn a_short_sms_is_measured_in_the_encoding_it_is_sent_in() {
        let world = world();
        let mut ctx = context(
            &world,
            &TEXTS[2],
            Subject::Announcement(AnnouncementKind::Initial),
        );
        ctx.crisis.severity = Severity::Major;
        ctx.crisis.title = "Kartpagoj malsukcesas".into();
        ctx.crisis.summary =
            "Ekde 09:10 kartpagoj malsukcesas por plej multaj klientoj; pago kontante plu funkcias."
                .into();
        ctx.announcement.message =
            Some("Pagu per banka transpago; neniu mendo estos nuligita.".into());
        let (text, room) = render(&world, Shown::Short(TextFamily::Sms), &ctx);
        let measured = sms::analyze(&text);
        assert_eq!(measured.encoding, sms::SmsEncoding::Gsm7, "{text}");
        assert!(measured.units > 201, "more than UCS-2 would allow: {text}");
        assert_eq!(room, Some(3), "{text}");
        for part in [
            &ctx.crisis.summary,
            ctx.announcement.message.as_ref().unwrap(),
        ] {
            assert!(text.contains(part.as_str()), "{text}");
        }
    }
}

/// Two people declaring the same at the same instant: one crisis, and the
/// other is told which (the check and the write are one step).
#[tokio::test]
async fn identical_declarations_sent_at_the_same_instant_make_one_crisis() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let declaration = json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                             "summary": "Card payments fail."});
    let sends = (0..8).map(|_| app.post("/v1/crises", &declaration));
    let mut statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(
        app.banner("en").await["crises"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_second_identical_declaration_is_refused_naming_the_active_crisis_unless_separate() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let declaration = json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                             "summary": "Card payments fail."});
    let first = app.post("/v1/crises", &declaration).await;
    assert_eq!(first.status(), 201);
    let id = first.json::<Value>().await.expect("JSON")["crisis"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    smtp.wait_for(3, Duration::from_secs(10)).await;

    // The same again, the title typed differently: refused, nobody messaged.
    let mut again = declaration.clone();
    again["title"] = json!(" payments are DOWN ");
    let refused = app.post("/v1/crises", &again).await;
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["existing_id"], id.as_str(), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--separate"),
        "{body}"
    );
    let cli = crate::cli::crisisd(
        &app,
        &[
            "declare",
            "--kind",
            "outage",
            "--severity",
            "major",
            "--title",
            "Payments are down",
            "--summary",
            "Card payments fail.",
        ],
    )
    .await;
    assert_eq!(cli.status.code(), Some(2), "{}", crate::cli::stderr(&cli));
    assert!(
        crate::cli::stderr(&cli).contains(&id),
        "{}",
        crate::cli::stderr(&cli)
    );
    assert_eq!(
        app.banner("en").await["crises"].as_array().unwrap().len(),
        1
    );

    // Another kind is another crisis; so is one said to be separate.
    let mut other_kind = declaration.clone();
    other_kind["kind"] = json!("security");
    assert_eq!(app.post("/v1/crises", &other_kind).await.status(), 201);
    let separate = crate::cli::crisisd(
        &app,
        &[
            "declare",
            "--kind",
            "outage",
            "--severity",
            "major",
            "--title",
            "Payments are down",
            "--summary",
            "Card payments fail in the app too.",
            "--separate",
        ],
    )
    .await;
    assert!(
        separate.status.success(),
        "{}",
        crate::cli::stderr(&separate)
    );
    smtp.wait_for(9, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(smtp.accepted().len(), 9, "three crises, three readers each");
}

/// ESC and NUL in crisis text would reach terminals, logs and headers; a
/// title of zero-width characters would show nothing. Refused from the
/// API and the CLI (the flag file and webhooks make the same declaration,
/// checked by the same validation), and nothing is declared.
#[tokio::test]
async fn control_characters_and_invisible_text_are_refused_naming_the_field() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    for (body, says) in [
        (
            json!({"kind": "outage", "severity": "major", "title": "Payments \u{1b}[2J are down",
                   "summary": "Card payments fail."}),
            "title contains the control character U+001B",
        ),
        (
            json!({"kind": "outage", "severity": "major", "title": "\u{200b}\u{200b}",
                   "summary": "Card payments fail."}),
            "title shows nothing",
        ),
        (
            json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                   "summary": "Card payments fail.",
                   "localized": {"bn": {"summary": "কার্ডে\u{0}পেমেন্ট"}}}),
            "localized summary contains the control character U+0000",
        ),
    ] {
        let refused = app.post("/v1/crises", &body).await;
        assert_eq!(refused.status(), 400, "{body}");
        let text = refused.text().await.unwrap();
        assert!(text.contains(says), "{says}: {text}");
    }
    let cli = crate::cli::crisisd(
        &app,
        &[
            "declare",
            "--kind",
            "outage",
            "--severity",
            "major",
            "--title",
            "Payments are down",
            "--summary",
            "Card payments fail.",
            "--message",
            "We are on it \u{7}\u{7}",
        ],
    )
    .await;
    assert_eq!(cli.status.code(), Some(2), "{}", crate::cli::stderr(&cli));
    assert!(
        crate::cli::stderr(&cli).contains("message contains the control character U+0007"),
        "{}",
        crate::cli::stderr(&cli)
    );
    assert_eq!(app.get_json("/v1/crises").await["crises"], json!([]));
    assert!(smtp.accepted().is_empty());
}

#[tokio::test]
async fn a_multi_line_title_and_an_unknown_preview_language_are_refused_saying_why() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let refused = app
        .post(
            "/v1/crises",
            &json!({"kind": "outage", "severity": "major", "title": "Payments\nare down",
                    "summary": "Card payments fail."}),
        )
        .await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("one line"));

    let preview = app
        .post(
            "/v1/preview",
            &json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                    "summary": "Card payments fail.", "channel": "sms", "lang": "fr"}),
        )
        .await;
    assert_eq!(preview.status(), 400);
    let problem = preview.text().await.unwrap();
    assert!(
        problem.contains("`fr`") && problem.contains("bn, en, eo"),
        "{problem}"
    );
    let regional = app
        .post(
            "/v1/preview",
            &json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                    "summary": "Card payments fail.", "channel": "sms", "lang": "bn-BD"}),
        )
        .await;
    assert_eq!(regional.status(), 200, "a regional tag finds its language");
}

/// Finding 7: a reader in Asia/Dhaka at 02:00 reads the directory's hours
/// in Dhaka time, the entry's New York hours beside; a reader in the
/// entry's own zone reads them as configured. "Open now" is the same
/// instant either way.
#[tokio::test]
async fn a_reader_in_dhaka_at_two_in_the_morning_reads_the_hours_in_dhaka_time() {
    use chrono::TimeZone;
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    // Wednesday 20:00 UTC: Thursday 02:00 in Dhaka, 15:00 in New York.
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 20, 0, 0)
        .single()
        .expect("time");
    config.clock = Some(std::sync::Arc::new(crisisd::clock::ManualClock::new(at)));
    let app = spawn_app(config).await;
    let response = app
        .post(
            "/v1/crises",
            &json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                    "summary": "Card payments fail."}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let mails = smtp.wait_for(3, Duration::from_secs(10)).await;

    // The chat is open 08:00-20:00 New York time, 19:00-07:00 in Dhaka.
    let bengali = mail_to(&mails, "rahim@example.org");
    let dhaka = "সোম–শুক্র 19:00–07:00 আপনার সময় (08:00–20:00 America/New_York)";
    let html = bengali.html().replace("&#x2f;", "/");
    for (part, text) in [("text", bengali.text()), ("HTML", html)] {
        assert!(text.contains(dhaka), "Bengali {part} part: {text}");
    }
    let english = mail_to(&mails, "ada@example.com");
    assert!(
        english
            .text()
            .contains("Mon–Fri 08:00–20:00 (America/New_York)")
            && !english.text().contains("your time"),
        "{}",
        english.text()
    );
    // 15:00 in New York on a Wednesday: open, for both.
    assert!(bengali.text().contains("এখন খোলা") && !bengali.text().contains("এখন বন্ধ"));
    assert!(english.text().contains("open now") && !english.text().contains("closed now"));

    // The banner, for a site that says its reader is in Dhaka.
    let banner = app.get_json("/v1/banner?lang=en&tz=Asia/Dhaka").await;
    let chat = banner["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .find(|c| c["id"] == "chat")
        .expect("chat")
        .clone();
    assert_eq!(
        chat["hours"],
        "Mon–Fri 19:00–07:00 your time (08:00–20:00 America/New_York)"
    );
    assert_eq!(chat["open_now"], true);
    let refused = reqwest::get(app.url("/v1/banner?tz=Mars/Olympus"))
        .await
        .expect("GET");
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.expect("body").contains("Mars/Olympus"));
}
