//! Diesel table definitions, kept in step with `migrations/` by hand.
// @generated-style file: one `table!` per table, columns in migration order.

diesel::table! {
    tenants (id) {
        id -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        strong_key_window_hours -> Int4,
        weak_key_window_hours -> Int4,
        max_key_prevalence -> Int4,
        correlation_ignore -> Array<Text>,
        auto_approve -> Bool,
        four_eyes -> Bool,
        accepted_domains -> Array<Text>,
    }
}

diesel::table! {
    incidents (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        display_name -> Text,
        display_name_custom -> Bool,
        severity -> Text,
        severity_custom -> Bool,
        status -> Text,
        classification -> Text,
        determination -> Text,
        assigned_to -> Nullable<Text>,
        custom_tags -> Array<Text>,
        system_tags -> Array<Text>,
        resolving_comment -> Nullable<Text>,
        priority_score -> Int4,
        priority_reasons -> Array<Text>,
        alert_count -> Int4,
        created_at -> Timestamptz,
        last_update_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
        redirect_incident_id -> Nullable<Uuid>,
        last_modified_by -> Nullable<Text>,
        version -> Int4,
    }
}

diesel::table! {
    alerts (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        incident_id -> Uuid,
        provider_alert_id -> Text,
        service_source -> Text,
        detection_source -> Nullable<Text>,
        alert_policy -> Nullable<Text>,
        title -> Text,
        description -> Nullable<Text>,
        severity -> Text,
        status -> Text,
        classification -> Text,
        determination -> Text,
        assigned_to -> Nullable<Text>,
        category -> Nullable<Text>,
        mitre_techniques -> Array<Text>,
        investigation_state -> Nullable<Text>,
        first_activity_at -> Nullable<Timestamptz>,
        last_activity_at -> Nullable<Timestamptz>,
        activity_at -> Timestamptz,
        created_at -> Timestamptz,
        last_update_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
        correlation_kind -> Text,
        correlation_matched -> Jsonb,
        correlation_skipped -> Jsonb,
        correlated_at -> Timestamptz,
        mailboxes -> Array<Text>,
        malicious_evidence -> Int4,
        source_hash -> Nullable<Text>,
    }
}

diesel::table! {
    correlation_locks (tenant_id, key_hash) {
        tenant_id -> Text,
        key_hash -> Int8,
    }
}

diesel::table! {
    evidence (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        alert_id -> Uuid,
        kind -> Text,
        entity_key -> Text,
        verdict -> Text,
        remediation_status -> Text,
        roles -> Array<Text>,
        data -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    alert_keys (tenant_id, alert_id, kind, value) {
        tenant_id -> Text,
        alert_id -> Uuid,
        kind -> Text,
        value -> Text,
        activity_at -> Timestamptz,
    }
}

diesel::table! {
    comments (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        incident_id -> Nullable<Uuid>,
        alert_id -> Nullable<Uuid>,
        author -> Text,
        author_name -> Nullable<Text>,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    activity (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        incident_id -> Nullable<Uuid>,
        alert_id -> Nullable<Uuid>,
        actor -> Text,
        kind -> Text,
        field -> Nullable<Text>,
        before -> Nullable<Jsonb>,
        after -> Nullable<Jsonb>,
        message -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    emails (tenant_id, id, received_at) {
        tenant_id -> Text,
        id -> Uuid,
        received_at -> Timestamptz,
        network_message_id -> Text,
        internet_message_id -> Nullable<Text>,
        recipient -> Text,
        recipient_domain -> Text,
        envelope_sender -> Nullable<Text>,
        envelope_sender_domain -> Nullable<Text>,
        header_from -> Nullable<Text>,
        sender_domain -> Nullable<Text>,
        sender_display_name -> Nullable<Text>,
        sender_ip -> Nullable<Text>,
        subject -> Nullable<Text>,
        direction -> Text,
        delivery_action -> Text,
        original_delivery_location -> Text,
        latest_delivery_location -> Text,
        threat_types -> Array<Text>,
        phish_confidence -> Nullable<Text>,
        detection_technologies -> Array<Text>,
        urls -> Array<Text>,
        url_domains -> Array<Text>,
        attachments -> Jsonb,
        cluster_id -> Nullable<Text>,
        keys -> Array<Int8>,
        source -> Text,
        override_source -> Nullable<Text>,
        state_at -> Timestamptz,
        moved_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    email_events (tenant_id, email_id, received_at, id) {
        tenant_id -> Text,
        email_id -> Uuid,
        received_at -> Timestamptz,
        id -> Uuid,
        kind -> Text,
        at -> Timestamptz,
        from_location -> Nullable<Text>,
        to_location -> Nullable<Text>,
        actor -> Nullable<Text>,
        reason -> Nullable<Text>,
        action_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    submissions (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        content_type -> Text,
        category -> Text,
        email_id -> Nullable<Uuid>,
        network_message_id -> Nullable<Text>,
        recipient -> Nullable<Text>,
        sender -> Nullable<Text>,
        subject -> Nullable<Text>,
        url -> Nullable<Text>,
        file_sha256 -> Nullable<Text>,
        submitted_by -> Text,
        submitted_by_name -> Nullable<Text>,
        status -> Text,
        result_category -> Nullable<Text>,
        result -> Nullable<Text>,
        result_detail -> Nullable<Text>,
        allow_block_entry_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    events (tenant_id, seq) {
        tenant_id -> Text,
        seq -> Int8,
        kind -> Text,
        incident_id -> Nullable<Uuid>,
        alert_id -> Nullable<Uuid>,
        actor -> Nullable<Text>,
        payload -> Jsonb,
        created_at -> Timestamptz,
        action_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    event_watermarks (tenant_id) {
        tenant_id -> Text,
        pruned_through -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    jobs (id) {
        id -> Uuid,
        tenant_id -> Text,
        kind -> Text,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        max_attempts -> Int4,
        run_at -> Timestamptz,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        dedupe_key -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    allow_block_entries (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        kind -> Text,
        value -> Text,
        action -> Text,
        notes -> Nullable<Text>,
        expires_at -> Nullable<Timestamptz>,
        never_expire -> Bool,
        remove_after_days -> Nullable<Int4>,
        last_used_at -> Nullable<Timestamptz>,
        created_by -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Text>,
        ip_range -> Nullable<Cidr>,
    }
}

diesel::table! {
    audit_log (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        actor -> Text,
        actor_name -> Nullable<Text>,
        target_kind -> Text,
        target_id -> Nullable<Text>,
        action -> Text,
        before -> Nullable<Jsonb>,
        after -> Nullable<Jsonb>,
        at -> Timestamptz,
    }
}

diesel::table! {
    actions (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        action_type -> Text,
        source -> Text,
        status -> Text,
        incident_id -> Nullable<Uuid>,
        investigation_id -> Nullable<Uuid>,
        proposed_by -> Text,
        proposed_by_name -> Nullable<Text>,
        comment -> Nullable<Text>,
        four_eyes -> Bool,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamptz>,
        decision_comment -> Nullable<Text>,
        preview -> Jsonb,
        target_count -> Int4,
        at_destination -> Int4,
        success_count -> Int4,
        failed_count -> Int4,
        already_count -> Int4,
        not_found_count -> Int4,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        mailbox -> Nullable<Text>,
        rule_name -> Nullable<Text>,
        rule -> Nullable<Jsonb>,
        attempts -> Int4,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    action_targets (tenant_id, action_id, email_id) {
        tenant_id -> Text,
        action_id -> Uuid,
        email_id -> Uuid,
        received_at -> Timestamptz,
        network_message_id -> Text,
        recipient -> Text,
        location_at_proposal -> Text,
        at_destination -> Bool,
        outcome -> Nullable<Text>,
        from_location -> Nullable<Text>,
        to_location -> Nullable<Text>,
        executed_at -> Nullable<Timestamptz>,
        attempts -> Int4,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    mail_servers (tenant_id) {
        tenant_id -> Text,
        host -> Text,
        port -> Int4,
        tls -> Text,
        master_user -> Text,
        password_sealed -> Bytea,
        sieve_host -> Nullable<Text>,
        sieve_port -> Nullable<Int4>,
        junk_folder -> Text,
        deleted_items_folder -> Text,
        recoverable_items_folder -> Text,
        updated_by -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    incidents,
    alerts,
    evidence,
    alert_keys,
    comments,
    activity,
    emails,
    email_events,
    actions,
    action_targets
);
