use super::*;

const NOW: Timestamp = Timestamp(1_795_860_000_000); // 2026-11-28T10:00:00Z

#[test]
fn spans_parse_and_print_in_their_largest_unit() {
    assert_eq!("30d".parse::<Span>().unwrap().millis(), 30 * DAY_MS);
    assert_eq!("90s".parse::<Span>().unwrap().millis(), 90_000);
    assert_eq!("2w".parse::<Span>().unwrap().millis(), 14 * DAY_MS);
    assert_eq!("0".parse::<Span>().unwrap().millis(), 0);
    assert_eq!("90m".parse::<Span>().unwrap().to_string(), "90m");
    assert_eq!("48h".parse::<Span>().unwrap().to_string(), "2d");
    for bad in ["", "d", "30", "30y", "-1d", "1.5h", "9999999999999d", "3 d"] {
        assert_eq!(bad.parse::<Span>(), Err(SpanError), "{bad:?}");
    }
}

#[test]
fn rfc3339_round_trips_and_honours_offsets() {
    for ms in [0, NOW.millis(), 951_782_400_000, 4_102_444_799_999] {
        let t = Timestamp(ms);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
    }
    assert_eq!(Timestamp::parse_rfc3339("2026-11-28T10:00:00Z"), Some(NOW));
    assert_eq!(
        Timestamp::parse_rfc3339("2026-11-28T11:30:00+01:30"),
        Some(NOW)
    );
    assert_eq!(
        Timestamp::parse_rfc3339("2026-11-28T08:00:00-02:00"),
        Some(NOW)
    );
    assert_eq!(
        Timestamp::parse_rfc3339("2026-11-28T10:00:00.5Z"),
        Some(NOW.plus_millis(500))
    );
    for bad in [
        "2026-11-28",
        "2026-11-28T10:00:00",
        "2026-02-29T10:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-11-28T24:00:00Z",
        "2026-11-28T10:00:00+1:00",
        "tomorrow",
        "2026-11-28T10:00:00.Z",
    ] {
        assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad:?}");
    }
}

#[test]
fn a_request_gives_a_date_or_a_lifetime_never_both_nor_a_past_date() {
    use ExpiryPolicy::*;
    assert_eq!(ExpiryPolicy::from_request(None, None, NOW), Ok(Never));
    assert_eq!(
        ExpiryPolicy::from_request(None, Some("30d"), NOW),
        Ok(After(Span(30 * DAY_MS)))
    );
    assert_eq!(
        ExpiryPolicy::from_request(Some("2026-12-01T00:00:00Z"), None, NOW),
        Ok(At(Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap()))
    );
    assert_eq!(
        ExpiryPolicy::from_request(Some("2026-12-01T00:00:00Z"), Some("1d"), NOW),
        Err(ExpiryError::Both)
    );
    assert!(matches!(
        ExpiryPolicy::from_request(Some("2026-11-28T10:00:00Z"), None, NOW),
        Err(ExpiryError::InPast(_))
    ));
    assert_eq!(
        ExpiryPolicy::from_request(Some("soon"), None, NOW),
        Err(ExpiryError::BadDate)
    );
    assert_eq!(
        ExpiryPolicy::from_request(None, Some("0"), NOW),
        Err(ExpiryError::SpanOutOfRange)
    );
    assert_eq!(
        ExpiryPolicy::from_request(None, Some("3651d"), NOW),
        Err(ExpiryError::SpanOutOfRange)
    );
}

#[test]
fn a_lifetime_restarts_at_each_roll_a_date_stays() {
    let life = ExpiryPolicy::After(Span(30 * DAY_MS));
    let made = life.deadline(NOW).unwrap();
    assert_eq!(made, NOW.plus_millis(30 * DAY_MS));
    let rolled_at = NOW.plus_millis(10 * DAY_MS);
    let stored = ExpiryPolicy::stored(life.lifetime(), Some(made));
    assert_eq!(
        stored.deadline(rolled_at),
        Some(rolled_at.plus_millis(30 * DAY_MS))
    );
    let date = ExpiryPolicy::stored(None, Some(made));
    assert_eq!(date.deadline(rolled_at), Some(made));
    assert_eq!(ExpiryPolicy::stored(None, None).deadline(rolled_at), None);
}

#[test]
fn grace_is_at_most_a_week_and_never_lengthens_a_life() {
    assert_eq!("0".parse::<Grace>().unwrap(), Grace::default());
    assert_eq!("7d".parse::<Grace>().unwrap().span().millis(), MAX_GRACE_MS);
    assert_eq!("169h".parse::<Grace>(), Err(GraceError::TooLong));
    assert_eq!("1 hour".parse::<Grace>(), Err(GraceError::Bad));
    let hour: Grace = "1h".parse().unwrap();
    assert_eq!(hour.old_deadline(NOW, None), NOW.plus_millis(HOUR_MS));
    let soon = NOW.plus_millis(60_000);
    assert_eq!(hour.old_deadline(NOW, Some(soon)), soon);
    assert_eq!(Grace::default().old_deadline(NOW, None), NOW);
}
