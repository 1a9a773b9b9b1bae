//! The access_log reader against real and hostile lines.

use super::*;

/// cPanel's real sample line.
const SAMPLE: &[u8] = b"51.20.122.192 - root [08/16/2024:17:43:06 -0000] \"GET /cpsess1338213286/scripts3/initial_setup_wizard1 HTTP/1.1\" 200 0 \"-\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36\" \"s\" \"-\" 2087";

fn line(user_agent: &str, auth: &str, forwarded: &str, proxy: &str) -> Vec<u8> {
    format!(
        "198.51.100.7 {proxy} bob [12/03/2026:21:19:22 -0000] \"GET /json-api/listaccts?api.version=1 HTTP/1.1\" 200 1234 \"-\" \"{user_agent}\" \"{auth}\" {forwarded} 2087"
    )
    .into_bytes()
}

#[test]
fn cpanels_sample_line_is_a_session() {
    let parsed = parse(SAMPLE).expect("parses");
    assert_eq!(parsed.ip, b"51.20.122.192");
    assert!(!parsed.proxied);
    assert_eq!(parsed.user, b"root");
    assert_eq!(parsed.time, 1_723_830_186);
    assert_eq!(
        parsed.request,
        b"GET /cpsess1338213286/scripts3/initial_setup_wizard1 HTTP/1.1"
    );
    assert_eq!(parsed.status, 200);
    assert_eq!(parsed.referer, b"-");
    assert!(parsed.user_agent.starts_with(b"Mozilla/5.0 (X11"));
    assert_eq!(parsed.auth, Auth::Session);
    assert_eq!(parsed.forwarded_for, None);
    assert_eq!(parsed.port, 2087);
    assert_eq!(parsed.class(), Class::Other);
}

#[test]
fn each_class_is_told_apart() {
    let ok = line("billing/1.0", "a", "\"-\"", "-");
    let parsed = parse(&ok).unwrap();
    assert_eq!(parsed.class(), Class::AccessKey);
    assert_eq!(parsed.source(), b"198.51.100.7");
    let refused = String::from_utf8(ok.clone())
        .unwrap()
        .replace("\" 200 1234 ", "\" 403 88 ");
    assert_eq!(
        parse(refused.as_bytes()).unwrap().class(),
        Class::RefusedAccessKey
    );
    for other in ["s", "b", "o", "-"] {
        let text = line("x", other, "\"-\"", "-");
        assert_eq!(parse(&text).unwrap().class(), Class::Other, "{other}");
    }
    let cpanel_port = String::from_utf8(ok).unwrap().replace(" 2087", " 2083");
    assert_eq!(parse(cpanel_port.as_bytes()).unwrap().class(), Class::Other);
    assert!(
        parse(&line("x", "z", "\"-\"", "-")).is_none(),
        "unknown letter"
    );
}

#[test]
fn through_the_proxy_the_address_is_the_last_forwarded_one() {
    let text = line(
        "x",
        "a",
        "\"X-Forwarded-For: 10.9.9.9, 203.0.113.5\"",
        "proxy",
    );
    let parsed = parse(&text).unwrap();
    assert!(parsed.proxied);
    assert_eq!(parsed.forwarded_for, Some(&b"10.9.9.9, 203.0.113.5"[..]));
    assert_eq!(parsed.source(), b"203.0.113.5");
    // Sent straight to cpsrvd, a forwarded-for header is the client's word only.
    let direct = line("x", "a", "\"X-Forwarded-For: 203.0.113.5\"", "-");
    assert_eq!(parse(&direct).unwrap().source(), b"198.51.100.7");
    // Not an address: the connection's.
    let junk = line("x", "a", "\"X-Forwarded-For: nonsense\"", "proxy");
    assert_eq!(parse(&junk).unwrap().source(), b"198.51.100.7");
}

#[test]
fn a_forged_user_agent_never_turns_a_session_into_an_access_key() {
    for forged in [
        "evil\" \"a\" \"-\" 2087",
        "evil\" \"a\" \"-\" 2087\" \"-",
        "\" \"a\" \"X-Forwarded-For: 1.2.3.4",
    ] {
        let text = line(forged, "s", "\"-\"", "-");
        match parse(&text) {
            None => {}
            Some(parsed) => assert_eq!(parsed.auth, Auth::Session, "{forged}"),
        }
    }
    // Quotes that do not make a second reading are kept, as they are.
    let quoted = line("Foo \"bar\" baz", "a", "\"-\"", "-");
    assert_eq!(parse(&quoted).unwrap().user_agent, b"Foo \"bar\" baz");
}

#[test]
fn a_forwarded_for_value_with_quotes_is_ambiguous() {
    for forged in [
        "\"X-Forwarded-For: 1.2.3.4\" \"a\" \"-\"",
        "\"X-Forwarded-For: 1.2.3.4\" \"a\" \"X-Forwarded-For: 5.6.7.8\"",
        "\"X-Forwarded-For: 1.2\"3.4\"",
    ] {
        let text = line("x", "s", forged, "proxy");
        assert!(parse(&text).is_none(), "{forged}");
    }
}

#[test]
fn a_request_or_referer_that_makes_a_second_status_is_ambiguous() {
    let text = line("x", "a", "\"-\"", "-");
    let text = String::from_utf8(text).unwrap();
    let forged = text.replace("listaccts?", "x\" 500 0 \"y?");
    assert!(parse(forged.as_bytes()).is_none());
    let referer = text.replace("1234 \"-\"", "1234 \"a\" 200 1 \"b\"");
    assert!(parse(referer.as_bytes()).is_none());
    // Quotes in the request alone do not.
    let quoted = text.replace("listaccts?", "x\"y?");
    assert_eq!(
        parse(quoted.as_bytes()).unwrap().request,
        b"GET /json-api/x\"y?api.version=1 HTTP/1.1"
    );
}

#[test]
fn truncated_and_malformed_lines_do_not_parse() {
    let full = line("agent", "a", "\"-\"", "-");
    for cut in 0..full.len() {
        let cut_line = &full[..cut];
        // A cut that still ends with a port is another valid line only if it ends right
        // before the last digits.
        if let Some(parsed) = parse(cut_line) {
            assert!(full.starts_with(cut_line) && parsed.port < 2087, "{cut}");
        }
    }
    for bad in [
        &b""[..],
        b"not a log line",
        b"1.2.3.4 maybe bob [12/03/2026:21:19:22 -0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\" \"a\" \"-\" 2087",
        b"1.2.3.4 - bob [12/03/2026 21:19:22 -0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\" \"a\" \"-\" 2087",
        b"1.2.3.4 - bob [12/03/2026:21:19:22 -0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\" \"a\" \"-\" 99999",
        b"1.2.3.4 - bob [12/03/2026:21:19:22 -0000] \"GET / HTTP/1.1\" 20 1 \"-\" \"x\" \"a\" \"-\" 2087",
        b"host.example - bob [12/03/2026:21:19:22 -0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\" \"a\" \"-\" 2087",
    ] {
        assert!(parse(bad).is_none(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn invalid_utf8_in_a_field_is_kept_as_bytes() {
    let mut text = line("caf", "a", "\"-\"", "-");
    let at = text.windows(3).position(|w| w == b"caf").unwrap() + 3;
    text.insert(at, 0xe9);
    let parsed = parse(&text).unwrap();
    assert_eq!(parsed.user_agent, b"caf\xe9");
}
