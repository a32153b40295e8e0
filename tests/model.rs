//! Wire-model tests: the API reference's credential examples, round trips,
//! redaction of secrets, and the validation errors of every wire object.

use serde_json::{json, Value};
use tollgate::model::is_secret_key;
use tollgate::{
    Credential, CredentialProperties, Health, HealthStatus, Provider, RateLimit, SecretString,
};

/// Wraps `properties` in a full credential object with the fields the API
/// sends besides the modelled ones.
fn credential_json(provider: &str, properties: Value) -> Value {
    json!({
        "id": "cred_7f3a",
        "name": "Main account",
        "provider": provider,
        "oauth_app_id": null,
        "inserted_at": "2024-03-01T12:00:00Z",
        "updated_at": "2024-03-02T08:30:00Z",
        "health": {"status": "healthy"},
        "rate_limit": {"allowed_requests": 100, "interval": 10000, "max_concurrent_requests": 5},
        "properties": properties,
    })
}

/// Parses `value` as a `T`, or panics with the error and the JSON.
fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    match serde_json::from_value(value.clone()) {
        Ok(parsed) => parsed,
        Err(error) => panic!("failed to parse: {error}\n{value:#}"),
    }
}

fn parse_credential(value: &Value) -> Credential {
    parse(value)
}

fn serialize<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("wire objects serialize to JSON")
}

/// Returns the error message of parsing `value` as a `T`, or panics when it
/// parses.
fn parse_error<T: serde::de::DeserializeOwned + std::fmt::Debug>(value: Value) -> String {
    match serde_json::from_value::<T>(value.clone()) {
        Ok(parsed) => panic!("expected an error for {value}, got {parsed:?}"),
        Err(error) => error.to_string(),
    }
}

// The examples below are the `properties` examples of the API reference,
// without their `// ...rest of the credential object` comments.

#[test]
fn airtable_example() {
    let properties = json!({
        "airtable_uid": "usrziLeD23j9AJ1",
        "kind": "airtable_oauth2",
        "refresh_token": "***********",
        "scope": "data.records:read data.records:write data.recordComments:read data.recordComments:write schema.bases:read schema.bases:write webhook:manage"
    });
    let wire = credential_json("airtable", properties);
    let credential = parse_credential(&wire);

    assert_eq!(credential.provider, Provider::Airtable);
    let CredentialProperties::AirtableOauth2(airtable) = &credential.properties else {
        panic!("expected airtable_oauth2, got {:?}", credential.properties);
    };
    assert_eq!(airtable.airtable_uid, "usrziLeD23j9AJ1");
    assert_eq!(airtable.refresh_token.expose(), "***********");
    assert!(airtable.scope.starts_with("data.records:read "));
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn checkout_champ_example() {
    let properties = json!({
        "login_id": "user123",
        "kind": "checkout_champ_password",
        "password": "password123"
    });
    let wire = credential_json("checkout_champ", properties);
    let credential = parse_credential(&wire);

    assert_eq!(
        credential.provider,
        Provider::Other("checkout_champ".into())
    );
    let CredentialProperties::CheckoutChampPassword(checkout) = &credential.properties else {
        panic!(
            "expected checkout_champ_password, got {:?}",
            credential.properties
        );
    };
    assert_eq!(checkout.login_id, "user123");
    assert_eq!(checkout.password.expose(), "password123");
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn github_example() {
    let properties = json!({
        "kind": "github_app",
        "account_type": "User",
        "account_login": "paul-atreides",
        "installation_id": "47232440"
    });
    let wire = credential_json("github", properties);
    let credential = parse_credential(&wire);

    assert_eq!(credential.provider, Provider::GitHub);
    let CredentialProperties::GitHubApp(github) = &credential.properties else {
        panic!("expected github_app, got {:?}", credential.properties);
    };
    assert_eq!(github.account_type, "User");
    assert_eq!(github.account_login, "paul-atreides");
    assert_eq!(github.installation_id, 47_232_440);

    // The example's string `installation_id` is written back as the integer
    // that the field's type calls for. Everything else is unchanged.
    let mut expected = wire.clone();
    expected["properties"]["installation_id"] = json!(47_232_440);
    assert_eq!(serialize(&credential), expected);
    assert_eq!(serialize(&parse_credential(&expected)), expected);
}

#[test]
fn hubspot_example() {
    let properties = json!({
        "hub_domain": "arrakis.io",
        "hub_id": 21902692,
        "kind": "hubspot_oauth2",
        "refresh_token": "***********",
        "scopes": [
            "oauth",
            "tickets",
            "e-commerce",
            "sales-email-read",
            "crm.lists.read",
            "crm.objects.contacts.read"
        ]
    });
    let wire = credential_json("hubspot", properties);
    let credential = parse_credential(&wire);

    assert_eq!(credential.provider, Provider::HubSpot);
    let CredentialProperties::HubSpotOauth2(hubspot) = &credential.properties else {
        panic!("expected hubspot_oauth2, got {:?}", credential.properties);
    };
    assert_eq!(hubspot.hub_domain, "arrakis.io");
    assert_eq!(hubspot.hub_id, 21_902_692);
    assert_eq!(hubspot.scopes.len(), 6);
    assert_eq!(hubspot.scopes[5], "crm.objects.contacts.read");
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn linear_example() {
    let properties = json!({
        "kind": "linear_oauth2",
        "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
        "scope": "read write issues:create",
        "linear_org_id": "abc123",
        "linear_org_name": "Arrakis Inc."
    });
    let wire = credential_json("linear", properties);
    let credential = parse_credential(&wire);

    assert_eq!(credential.provider, Provider::Linear);
    let CredentialProperties::LinearOauth2(linear) = &credential.properties else {
        panic!("expected linear_oauth2, got {:?}", credential.properties);
    };
    assert_eq!(linear.scope, "read write issues:create");
    assert_eq!(linear.expires_in_s, None);
    assert_eq!(linear.linear_org_id, "abc123");
    assert_eq!(linear.linear_org_name, "Arrakis Inc.");
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn linear_expires_in_s() {
    let properties = json!({
        "kind": "linear_oauth2",
        "access_token": "lin_oauth_1",
        "scope": "read",
        "expires_in_s": 315705599,
        "linear_org_id": "abc123",
        "linear_org_name": "Arrakis Inc."
    });
    let parsed: CredentialProperties = parse(&properties);

    let CredentialProperties::LinearOauth2(linear) = &parsed else {
        panic!("expected linear_oauth2, got {parsed:?}");
    };
    assert_eq!(linear.expires_in_s, Some(315_705_599));
    assert_eq!(serialize(&parsed), properties);
}

#[test]
fn salesforce_example() {
    let properties = json!({
        "instance_url": "https://arrakis.my.salesforce.com",
        "kind": "salesforce_oauth2",
        "refresh_token": "***********",
        "scope": "api refresh_token",
        "sfid": "arrakis"
    });
    let wire = credential_json("salesforce", properties);
    let credential = parse_credential(&wire);

    assert_eq!(credential.provider, Provider::Salesforce);
    let CredentialProperties::SalesforceOauth2(salesforce) = &credential.properties else {
        panic!(
            "expected salesforce_oauth2, got {:?}",
            credential.properties
        );
    };
    assert_eq!(salesforce.instance_url, "https://arrakis.my.salesforce.com");
    assert_eq!(salesforce.scope, "api refresh_token");
    assert_eq!(salesforce.sfid, "arrakis");
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn shopify_example() {
    let properties = json!({
        "kind": "shopify_oauth2",
        "access_token": "shpca_ef73c3...",
        "shop": "shop-001.myshopify.com"
    });
    let wire = credential_json("shopify", properties);
    let credential = parse_credential(&wire);

    assert_eq!(credential.provider, Provider::Shopify);
    let CredentialProperties::ShopifyOauth2(shopify) = &credential.properties else {
        panic!("expected shopify_oauth2, got {:?}", credential.properties);
    };
    assert_eq!(shopify.access_token.expose(), "shpca_ef73c3...");
    assert_eq!(shopify.shop, "shop-001.myshopify.com");
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn stripe_example() {
    let properties = json!({
        "kind": "stripe_oauth2",
        "name": "Arrakis [TEST]",
        "secret": "*********",
        "test": true
    });
    let wire = credential_json("stripe", properties);
    let credential = parse_credential(&wire);

    assert_eq!(credential.provider, Provider::Stripe);
    let CredentialProperties::StripeOauth2(stripe) = &credential.properties else {
        panic!("expected stripe_oauth2, got {:?}", credential.properties);
    };
    assert_eq!(stripe.account_id, None);
    assert_eq!(stripe.name, "Arrakis [TEST]");
    assert!(stripe.test);
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn stripe_key_with_account_id() {
    let properties = json!({
        "kind": "stripe_key",
        "account_id": "acct_1Nv0FGQ9RKHgCVdK",
        "name": "Arrakis",
        "secret": "sk_live_1234",
        "test": false
    });
    let wire = credential_json("stripe", properties);
    let credential = parse_credential(&wire);

    let CredentialProperties::StripeKey(stripe) = &credential.properties else {
        panic!("expected stripe_key, got {:?}", credential.properties);
    };
    assert_eq!(stripe.account_id.as_deref(), Some("acct_1Nv0FGQ9RKHgCVdK"));
    assert_eq!(stripe.secret.expose(), "sk_live_1234");
    assert!(!stripe.test);
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn minimal_credential_round_trips() {
    let wire = json!({
        "id": "cred_1",
        "provider": "shopify",
        "properties": {
            "kind": "shopify_oauth2",
            "access_token": "shpca_1",
            "shop": "a.myshopify.com"
        }
    });
    let credential = parse_credential(&wire);

    assert_eq!(credential.rate_limit, None);
    assert_eq!(credential.health, None);
    assert!(credential.extra.is_empty());
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn null_optionals_round_trip() {
    let mut wire = credential_json(
        "stripe",
        json!({
            "kind": "stripe_key",
            "account_id": null,
            "name": "A",
            "secret": "sk_1",
            "test": false
        }),
    );
    wire["rate_limit"] = Value::Null;
    wire["health"] = Value::Null;
    let credential = parse_credential(&wire);

    assert_eq!(credential.rate_limit, None);
    assert_eq!(credential.health, None);
    let CredentialProperties::StripeKey(stripe) = &credential.properties else {
        panic!("expected stripe_key, got {:?}", credential.properties);
    };
    assert_eq!(stripe.account_id, None);
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn set_optional_replaces_kept_null() {
    let mut wire = credential_json(
        "stripe",
        json!({"kind": "stripe_key", "name": "A", "secret": "s", "test": false}),
    );
    wire["rate_limit"] = Value::Null;
    let mut credential = parse_credential(&wire);

    credential.rate_limit = Some(RateLimit::new(10, 1000, 0).expect("10 per 1000 ms is valid"));
    let written = serialize(&credential);

    assert_eq!(
        written["rate_limit"],
        json!({"allowed_requests": 10, "interval": 1000, "max_concurrent_requests": 0})
    );
}

#[test]
fn extra_properties_fields_round_trip() {
    let properties = json!({
        "kind": "github_app",
        "account_type": "Organization",
        "account_login": "arrakis",
        "installation_id": 1,
        "repository_selection": "all",
        "permissions": {"contents": "read", "issues": "write"}
    });
    let parsed: CredentialProperties = parse(&properties);

    assert_eq!(parsed.extra().len(), 2);
    assert_eq!(parsed.extra()["repository_selection"], "all");
    assert_eq!(serialize(&parsed), properties);
}

#[test]
fn installation_id_forms() {
    for (installation_id, expected) in [
        (json!("47232440"), 47_232_440_u64),
        (json!(47232440), 47_232_440),
        (json!("0"), 0),
        (json!("18446744073709551615"), u64::MAX),
    ] {
        let properties = json!({
            "kind": "github_app",
            "account_type": "User",
            "account_login": "paul-atreides",
            "installation_id": installation_id
        });
        let parsed: CredentialProperties = parse(&properties);

        let CredentialProperties::GitHubApp(github) = &parsed else {
            panic!("expected github_app, got {parsed:?}");
        };
        assert_eq!(
            github.installation_id, expected,
            "installation_id {installation_id}"
        );
        assert_eq!(serialize(&parsed)["installation_id"], json!(expected));
    }
}

#[test]
fn installation_id_invalid() {
    for (installation_id, value, rule) in [
        (
            json!("abc"),
            "\"abc\"",
            "must be an integer or a string of decimal digits",
        ),
        (
            json!(""),
            "\"\"",
            "must be an integer or a string of decimal digits",
        ),
        (
            json!("-5"),
            "\"-5\"",
            "must be an integer or a string of decimal digits",
        ),
        (
            json!("+5"),
            "\"+5\"",
            "must be an integer or a string of decimal digits",
        ),
        (
            json!("12 34"),
            "\"12 34\"",
            "must be an integer or a string of decimal digits",
        ),
        (
            json!(true),
            "true",
            "must be an integer or a string of decimal digits",
        ),
        (
            json!(-5),
            "-5",
            "must be an integer from 0 to 18446744073709551615",
        ),
        (
            json!(1.5),
            "1.5",
            "must be an integer from 0 to 18446744073709551615",
        ),
        (
            json!("18446744073709551616"),
            "\"18446744073709551616\"",
            "must be at most 18446744073709551615",
        ),
    ] {
        let properties = json!({
            "kind": "github_app",
            "account_type": "User",
            "account_login": "paul-atreides",
            "installation_id": installation_id
        });
        let message = parse_error::<CredentialProperties>(properties);

        assert!(message.contains("github_app"), "kind in: {message}");
        assert!(message.contains("installation_id"), "field in: {message}");
        assert!(message.contains(value), "value {value} in: {message}");
        assert!(message.contains(rule), "rule in: {message}");
    }
}

#[test]
fn installation_id_error_in_credential() {
    let wire = credential_json(
        "github",
        json!({
            "kind": "github_app",
            "account_type": "User",
            "account_login": "paul-atreides",
            "installation_id": "forty-seven"
        }),
    );
    let message = serde_json::from_str::<Credential>(&wire.to_string())
        .expect_err("a non-numeric installation_id is invalid")
        .to_string();

    assert!(
        message.contains("invalid github_app properties"),
        "context in: {message}"
    );
    assert!(message.contains("installation_id"), "field in: {message}");
    assert!(message.contains("\"forty-seven\""), "value in: {message}");
}

#[test]
fn unknown_provider_round_trips() {
    let wire = credential_json(
        "Zendesk-EU",
        json!({"kind": "zendesk_oauth2", "subdomain": "arrakis"}),
    );
    let credential = parse_credential(&wire);

    assert_eq!(credential.provider, Provider::Other("Zendesk-EU".into()));
    assert_eq!(credential.provider.as_str(), "Zendesk-EU");
    assert!(!credential.provider.is_known());
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn unknown_kind_round_trips() {
    let properties = json!({
        "kind": "zendesk_oauth2",
        "subdomain": "arrakis",
        "refresh_token": "SECRET-refresh-123",
        "expires_in_s": 3600,
        "nested": {"list": [1, "two", null, {"deep": true}]}
    });
    let wire = credential_json("zendesk", properties.clone());
    let credential = parse_credential(&wire);

    let CredentialProperties::Unknown(unknown) = &credential.properties else {
        panic!("expected an unknown kind, got {:?}", credential.properties);
    };
    assert_eq!(unknown.kind, "zendesk_oauth2");
    assert_eq!(unknown.fields.get("subdomain"), Some(&json!("arrakis")));
    assert!(!unknown.fields.contains_key("kind"));
    assert_eq!(credential.properties.kind(), "zendesk_oauth2");
    assert_eq!(serialize(&credential), wire);
    assert_eq!(serialize(&credential.properties), properties);
}

#[test]
fn providers_parse_by_name() {
    let names = [
        ("airtable", Provider::Airtable),
        ("auth0", Provider::Auth0),
        ("hubspot", Provider::HubSpot),
        ("github", Provider::GitHub),
        ("linear", Provider::Linear),
        ("marketo", Provider::Marketo),
        ("netsuite", Provider::NetSuite),
        ("quickbooks", Provider::QuickBooks),
        ("salesforce", Provider::Salesforce),
        ("sendgrid", Provider::SendGrid),
        ("servicenow", Provider::ServiceNow),
        ("shopify", Provider::Shopify),
        ("stripe", Provider::Stripe),
        ("workday", Provider::Workday),
    ];
    for (name, expected) in names {
        let parsed: Provider = parse(&json!(name));

        assert_eq!(parsed, expected, "{name}");
        assert!(matches!(parsed, ref p if p.is_known()), "{name} is known");
        assert_eq!(parsed.as_str(), name);
        assert_eq!(parsed.to_string(), name);
        assert_eq!(serialize(&parsed), json!(name));
    }
}

#[test]
fn provider_other_keeps_name() {
    let parsed: Provider = parse(&json!("Stripe"));

    assert_eq!(parsed, Provider::Other("Stripe".into()));
    assert_ne!(parsed, Provider::Stripe);
    assert_eq!(serialize(&parsed), json!("Stripe"));
    assert_eq!("stripe".parse::<Provider>(), Ok(Provider::Stripe));
    assert_eq!(Provider::Other("stripe".into()), Provider::Stripe);
}

// Redaction: one properties object per kind, each holding a distinctive
// secret and a distinctive non-secret value.

/// Properties of every kind, with the secret and a non-secret value in each.
fn secret_cases() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    vec![
        (
            "airtable",
            json!({
                "kind": "airtable_oauth2",
                "airtable_uid": "usr-VISIBLE-1",
                "refresh_token": "SECRET-refresh-123",
                "scope": "data.records:read"
            }),
            "SECRET-refresh-123",
            "usr-VISIBLE-1",
        ),
        (
            "checkout_champ",
            json!({
                "kind": "checkout_champ_password",
                "login_id": "login-VISIBLE-2",
                "password": "SECRET-password-234"
            }),
            "SECRET-password-234",
            "login-VISIBLE-2",
        ),
        (
            "github",
            json!({
                "kind": "github_app",
                "account_type": "User",
                "account_login": "login-VISIBLE-3",
                "installation_id": 7,
                "client_secret": "SECRET-extra-345"
            }),
            "SECRET-extra-345",
            "login-VISIBLE-3",
        ),
        (
            "hubspot",
            json!({
                "kind": "hubspot_oauth2",
                "hub_domain": "domain-VISIBLE-4.io",
                "hub_id": 4,
                "refresh_token": "SECRET-refresh-456",
                "scopes": ["oauth"]
            }),
            "SECRET-refresh-456",
            "domain-VISIBLE-4.io",
        ),
        (
            "linear",
            json!({
                "kind": "linear_oauth2",
                "access_token": "SECRET-access-567",
                "scope": "read",
                "linear_org_id": "org-VISIBLE-5",
                "linear_org_name": "Arrakis"
            }),
            "SECRET-access-567",
            "org-VISIBLE-5",
        ),
        (
            "salesforce",
            json!({
                "kind": "salesforce_oauth2",
                "instance_url": "https://VISIBLE-6.my.salesforce.com",
                "refresh_token": "SECRET-refresh-678",
                "scope": "api",
                "sfid": "arrakis"
            }),
            "SECRET-refresh-678",
            "https://VISIBLE-6.my.salesforce.com",
        ),
        (
            "shopify",
            json!({
                "kind": "shopify_oauth2",
                "access_token": "SECRET-access-789",
                "shop": "shop-VISIBLE-7.myshopify.com"
            }),
            "SECRET-access-789",
            "shop-VISIBLE-7.myshopify.com",
        ),
        (
            "stripe",
            json!({
                "kind": "stripe_oauth2",
                "name": "name-VISIBLE-8",
                "secret": "SECRET-stripe-890",
                "test": true
            }),
            "SECRET-stripe-890",
            "name-VISIBLE-8",
        ),
        (
            "stripe",
            json!({
                "kind": "stripe_key",
                "account_id": "acct-VISIBLE-9",
                "name": "Arrakis",
                "secret": "SECRET-stripe-901",
                "test": false
            }),
            "SECRET-stripe-901",
            "acct-VISIBLE-9",
        ),
        (
            "zendesk",
            json!({
                "kind": "zendesk_oauth2",
                "subdomain": "sub-VISIBLE-10",
                "accessToken": "SECRET-token-012"
            }),
            "SECRET-token-012",
            "sub-VISIBLE-10",
        ),
        (
            "zendesk",
            json!({
                "kind": "zendesk_api",
                "subdomain": "sub-VISIBLE-11",
                "auth": {"API_KEY": "SECRET-key-123", "user": "ops"}
            }),
            "SECRET-key-123",
            "sub-VISIBLE-11",
        ),
        (
            "zendesk",
            json!({
                "kind": "zendesk_basic",
                "login": "login-VISIBLE-12",
                "credentials": {"user": "ops", "pin": "SECRET-nested-234"}
            }),
            "SECRET-nested-234",
            "login-VISIBLE-12",
        ),
    ]
}

#[test]
fn properties_hide_secrets() {
    for (_, properties, secret, visible) in secret_cases() {
        let kind = properties["kind"]
            .as_str()
            .expect("every case has a kind")
            .to_owned();
        let parsed: CredentialProperties = parse(&properties);
        let debug = format!("{parsed:?}");
        let display = format!("{parsed}");

        assert!(
            !debug.contains(secret),
            "{kind} Debug shows the secret: {debug}"
        );
        assert!(
            debug.contains(visible),
            "{kind} Debug hides {visible}: {debug}"
        );
        assert!(
            debug.contains("[redacted]"),
            "{kind} Debug lacks [redacted]: {debug}"
        );
        assert!(
            !display.contains(secret),
            "{kind} Display shows the secret: {display}"
        );
        assert_eq!(display, kind);
        assert_eq!(
            serialize(&parsed).to_string().matches(secret).count(),
            1,
            "{kind}"
        );
    }
}

#[test]
fn credential_hides_secrets() {
    for (provider, properties, secret, visible) in secret_cases() {
        let kind = properties["kind"]
            .as_str()
            .expect("every case has a kind")
            .to_owned();
        let credential = parse_credential(&credential_json(provider, properties));
        let debug = format!("{credential:?}");
        let display = format!("{credential}");

        assert!(
            !debug.contains(secret),
            "{kind} Debug shows the secret: {debug}"
        );
        assert!(
            debug.contains(visible),
            "{kind} Debug hides {visible}: {debug}"
        );
        assert!(
            debug.contains("cred_7f3a"),
            "{kind} Debug hides the id: {debug}"
        );
        assert!(
            !display.contains(secret),
            "{kind} Display shows the secret: {display}"
        );
        assert_eq!(
            display,
            format!("credential cred_7f3a ({provider}, {kind})")
        );
    }
}

#[test]
fn credential_extra_secret_hidden() {
    let mut wire = credential_json(
        "shopify",
        json!({
            "kind": "shopify_oauth2",
            "access_token": "SECRET-access-1",
            "shop": "a.myshopify.com"
        }),
    );
    wire["webhook_signing_secret"] = json!("SECRET-webhook-2");
    let credential = parse_credential(&wire);
    let debug = format!("{credential:?}");

    assert!(
        !debug.contains("SECRET-webhook-2"),
        "Debug shows the secret: {debug}"
    );
    assert!(
        debug.contains("Main account"),
        "Debug hides the name: {debug}"
    );
    assert_eq!(serialize(&credential), wire);
}

#[test]
fn secret_string_redacts() {
    let secret = SecretString::new("SECRET-refresh-123");

    assert_eq!(format!("{secret:?}"), "[redacted]");
    assert_eq!(format!("{secret}"), "[redacted]");
    assert_eq!(secret.expose(), "SECRET-refresh-123");
    assert_eq!(serialize(&secret), json!("SECRET-refresh-123"));
    assert_eq!(secret.clone().into_exposed(), "SECRET-refresh-123");
}

#[test]
fn secret_key_rule() {
    for key in [
        "refresh_token",
        "accessToken",
        "client_secret",
        "password",
        "passwd",
        "api_key",
        "API_KEY",
        "private_key",
        "credentials",
        "Authorization",
        "session_id",
        "cookie",
    ] {
        assert!(is_secret_key(key), "{key} should be secret");
    }
    for key in [
        "kind",
        "scope",
        "shop",
        "login_id",
        "name",
        "subdomain",
        "installation_id",
    ] {
        assert!(!is_secret_key(key), "{key} should not be secret");
    }
}

#[test]
fn secret_of_wrong_type_not_shown() {
    let properties = json!({
        "kind": "airtable_oauth2",
        "airtable_uid": "usr1",
        "refresh_token": 987654321,
        "scope": "data.records:read"
    });
    let message = parse_error::<CredentialProperties>(properties);

    assert!(!message.contains("987654321"), "secret in: {message}");
    assert!(message.contains("refresh_token"), "field in: {message}");
    assert!(
        message.contains("must be a string, got a number"),
        "rule in: {message}"
    );
}

// Properties and credential errors.

#[test]
fn properties_errors() {
    let cases = [
        (
            json!({"kind": "airtable_oauth2", "airtable_uid": "u", "scope": "s"}),
            "invalid airtable_oauth2 properties: refresh_token is required, got missing",
        ),
        (
            json!({
                "kind": "hubspot_oauth2",
                "hub_domain": "a.io",
                "hub_id": "21902692",
                "refresh_token": "r",
                "scopes": []
            }),
            "invalid hubspot_oauth2 properties: hub_id must be an integer from 0 to 18446744073709551615, got \"21902692\"",
        ),
        (
            json!({
                "kind": "hubspot_oauth2",
                "hub_domain": "a.io",
                "hub_id": 1,
                "refresh_token": "r",
                "scopes": "oauth"
            }),
            "invalid hubspot_oauth2 properties: scopes must be an array of strings, got \"oauth\"",
        ),
        (
            json!({
                "kind": "hubspot_oauth2",
                "hub_domain": "a.io",
                "hub_id": 1,
                "refresh_token": "r",
                "scopes": ["oauth", 5]
            }),
            "invalid hubspot_oauth2 properties: scopes must contain only strings, got 5",
        ),
        (
            json!({"kind": "stripe_key", "name": "A", "secret": "s", "test": "yes"}),
            "invalid stripe_key properties: test must be true or false, got \"yes\"",
        ),
        (
            json!({
                "kind": "stripe_key",
                "account_id": 5,
                "name": "A",
                "secret": "s",
                "test": true
            }),
            "invalid stripe_key properties: account_id must be a string, got 5",
        ),
        (
            json!({
                "kind": "linear_oauth2",
                "access_token": "a",
                "scope": "read",
                "expires_in_s": -1,
                "linear_org_id": "o",
                "linear_org_name": "n"
            }),
            "invalid linear_oauth2 properties: expires_in_s must be an integer from 0 to 18446744073709551615, got -1",
        ),
        (
            json!({"kind": "shopify_oauth2", "access_token": "a", "shop": null}),
            "invalid shopify_oauth2 properties: shop must be a string, got null",
        ),
        (
            json!({"refresh_token": "r"}),
            "invalid properties: kind is required, got missing",
        ),
        (
            json!({"kind": 7}),
            "invalid properties: kind must be a string, got 7",
        ),
        (
            json!("sk_live_1234"),
            "properties must be a JSON object, got a string",
        ),
    ];
    for (properties, expected) in cases {
        let message = parse_error::<CredentialProperties>(properties);

        assert_eq!(message, expected);
    }
}

#[test]
fn credential_errors() {
    let properties = json!({"kind": "shopify_oauth2", "access_token": "a", "shop": "s"});
    let cases = [
        (
            json!({"provider": "shopify", "properties": properties}),
            "invalid credential: id is required, got missing",
        ),
        (
            json!({"id": 5, "provider": "shopify", "properties": properties}),
            "invalid credential: id must be a string, got 5",
        ),
        (
            json!({"id": "c", "provider": ["shopify"], "properties": properties}),
            "invalid credential: provider must be a string, got an array",
        ),
        (
            json!({"id": "c", "provider": "shopify"}),
            "invalid credential: properties is required, got missing",
        ),
        (
            json!({
                "id": "c",
                "provider": "shopify",
                "properties": properties,
                "rate_limit": {
                    "allowed_requests": 0,
                    "interval": 1000,
                    "max_concurrent_requests": 0
                }
            }),
            "invalid rate_limit: allowed_requests must be at least 1, got 0",
        ),
        (
            json!({
                "id": "c",
                "provider": "shopify",
                "properties": properties,
                "health": {"status": "broken"}
            }),
            "invalid health: status must be one of \"healthy\", \"customer_intervention\" or \"sequin_intervention\", got \"broken\"",
        ),
        (
            json!({
                "id": "c",
                "provider": "shopify",
                "properties": properties,
                "health": "healthy"
            }),
            "health must be a JSON object, got a string",
        ),
        (json!([1, 2]), "credential must be a JSON object, got an array"),
    ];
    for (credential, expected) in cases {
        let message = parse_error::<Credential>(credential);

        assert_eq!(message, expected);
    }
}

// RateLimit.

#[test]
fn rate_limit_round_trips() {
    for wire in [
        json!({"allowed_requests": 100, "interval": 10000, "max_concurrent_requests": 5}),
        json!({"allowed_requests": 1, "interval": 1, "max_concurrent_requests": 0}),
        json!({
            "allowed_requests": 4294967295_u32,
            "interval": 18446744073709551615_u64,
            "max_concurrent_requests": 4294967295_u32
        }),
    ] {
        let limit: RateLimit = parse(&wire);

        assert_eq!(serialize(&limit), wire);
    }
}

/// Parses a rate limit from JSON text, so that numbers outside the range of
/// `serde_json::Value` reach the parser as written.
fn rate_limit_error(text: &str) -> String {
    match serde_json::from_str::<RateLimit>(text) {
        Ok(limit) => panic!("expected an error for {text}, got {limit:?}"),
        Err(error) => error.to_string(),
    }
}

/// Returns the text of a valid rate limit with `field` set to the JSON text
/// `value`.
fn rate_limit_with(field: &str, value: &str) -> String {
    let mut fields = [
        ("allowed_requests", "10"),
        ("interval", "1000"),
        ("max_concurrent_requests", "0"),
    ];
    for (name, text) in &mut fields {
        if *name == field {
            *text = value;
        }
    }
    let members: Vec<String> = fields
        .iter()
        .map(|(name, text)| format!("\"{name}\": {text}"))
        .collect();
    format!("{{{}}}", members.join(", "))
}

#[test]
fn rate_limit_errors() {
    // (field, its JSON text, the value the message reports, the rule)
    #[rustfmt::skip]
    let cases = [
        ("allowed_requests", "0", "0", "must be at least 1"),
        ("interval", "0", "0", "must be at least 1"),
        ("allowed_requests", "-1", "-1", "must not be negative"),
        ("interval", "-1000", "-1000", "must not be negative"),
        ("max_concurrent_requests", "-2", "-2", "must not be negative"),
        ("allowed_requests", "1.5", "1.5", "must be a whole number"),
        ("interval", "1.5", "1.5", "must be a whole number"),
        ("max_concurrent_requests", "0.5", "0.5", "must be a whole number"),
        ("allowed_requests", "null", "null", "must be a number"),
        ("interval", "null", "null", "must be a number"),
        ("max_concurrent_requests", "null", "null", "must be a number"),
        ("allowed_requests", "4294967296", "4294967296", "must be at most 4294967295"),
        ("max_concurrent_requests", "4294967296", "4294967296", "must be at most 4294967295"),
        // serde_json reads an integer above u64::MAX as an f64, so the
        // message reports 2^64 rounded to f64 precision.
        ("interval", "18446744073709551616", "18446744073709552000", "must be at most 18446744073709551615"),
        ("allowed_requests", "\"100\"", "\"100\"", "must be a number"),
        ("interval", "\"1s\"", "\"1s\"", "must be a number"),
        ("allowed_requests", "true", "true", "must be a number"),
        ("interval", "[1000]", "an array", "must be a number"),
        ("max_concurrent_requests", "{}", "an object", "must be a number"),
        ("interval", "1e3", "1000.0", "must be written as an integer"),
        ("interval", "1000.0", "1000.0", "must be written as an integer"),
    ];
    for (field, text, value, rule) in cases {
        let message = rate_limit_error(&rate_limit_with(field, text));

        assert!(message.starts_with(field), "field {field} in: {message}");
        assert!(
            message.contains(&format!("got {value}")),
            "value {value} in: {message}"
        );
        assert!(message.contains(rule), "rule {rule} in: {message}");
    }
}

#[test]
fn rate_limit_missing_fields() {
    for (text, field) in [
        (
            r#"{"interval": 1000, "max_concurrent_requests": 0}"#,
            "allowed_requests",
        ),
        (
            r#"{"allowed_requests": 10, "max_concurrent_requests": 0}"#,
            "interval",
        ),
        (
            r#"{"allowed_requests": 10, "interval": 1000}"#,
            "max_concurrent_requests",
        ),
    ] {
        let message = rate_limit_error(text);

        assert!(
            message.starts_with(&format!("{field} is required")),
            "{field} in: {message}"
        );
        assert!(message.contains("got missing"), "{field} in: {message}");
        if field == "max_concurrent_requests" {
            assert!(
                message.contains("0 means no concurrency cap"),
                "hint in: {message}"
            );
        }
    }
}

#[test]
fn rate_limit_error_in_credential() {
    // A credential parses its rate limit from a `serde_json::Value`, a
    // different deserializer from the text one above.
    let mut wire = credential_json(
        "stripe",
        json!({"kind": "stripe_key", "name": "A", "secret": "s", "test": true}),
    );
    wire["rate_limit"] =
        json!({"allowed_requests": null, "interval": 1000, "max_concurrent_requests": 0});
    let message = parse_error::<Credential>(wire);

    assert_eq!(
        message,
        "invalid rate_limit: allowed_requests must be a number, got null"
    );
}

#[test]
fn rate_limit_new_errors() {
    let allowed = RateLimit::new(0, 1000, 0).expect_err("0 requests is invalid");
    let interval = RateLimit::new(1, 0, 0).expect_err("0 ms is invalid");

    assert_eq!(allowed.field(), "allowed_requests");
    assert_eq!(allowed.value(), "0");
    assert_eq!(allowed.rule(), "must be at least 1");
    assert_eq!(interval.field(), "interval");
    assert_eq!(interval.value(), "0");
    assert!(interval.rule().starts_with("must be at least 1"));
}

// Health.

#[test]
fn health_statuses_parse() {
    for (name, expected) in [
        ("healthy", HealthStatus::Healthy),
        ("customer_intervention", HealthStatus::CustomerIntervention),
        ("sequin_intervention", HealthStatus::SequinIntervention),
    ] {
        let wire = json!({"status": name});
        let health: Health = parse(&wire);

        assert_eq!(health.status, expected, "{name}");
        assert_eq!(health.status.as_str(), name);
        assert_eq!(health.status.to_string(), name);
        assert_eq!(serialize(&health), wire);
    }
}

#[test]
fn health_unknown_status_rejected() {
    let message = parse_error::<Health>(json!({"status": "degraded"}));

    assert!(message.contains("status"), "field in: {message}");
    assert!(message.contains("\"degraded\""), "value in: {message}");
    assert!(
        message.contains("\"healthy\""),
        "allowed values in: {message}"
    );
    assert!(
        message.contains("\"customer_intervention\""),
        "allowed values in: {message}"
    );
    assert!(
        message.contains("\"sequin_intervention\""),
        "allowed values in: {message}"
    );
}

#[test]
fn health_status_errors() {
    for (wire, expected) in [
        (json!({}), "invalid health: status is required, got missing"),
        (
            json!({"status": 1}),
            "invalid health: status must be one of \"healthy\", \"customer_intervention\" or \"sequin_intervention\", got 1",
        ),
        (
            json!({"status": "Healthy"}),
            "invalid health: status must be one of \"healthy\", \"customer_intervention\" or \"sequin_intervention\", got \"Healthy\"",
        ),
    ] {
        assert_eq!(parse_error::<Health>(wire), expected);
    }
    assert!("unknown".parse::<HealthStatus>().is_err());
}

#[test]
fn health_extra_round_trips() {
    let wire = json!({
        "status": "customer_intervention",
        "checks": [{"name": "auth", "status": "failing"}]
    });
    let health: Health = parse(&wire);

    assert_eq!(health.status, HealthStatus::CustomerIntervention);
    assert_eq!(health.extra.len(), 1);
    assert_eq!(serialize(&health), wire);
}
