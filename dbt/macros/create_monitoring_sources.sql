{#- The monitoring tables are written by Python (dagster_project/monitoring.py, DDL), but the monitoring marts
    read them as sources, and in a fresh warehouse dbt runs before the first monitoring. This on-run-start hook
    creates them empty, with exactly the columns, types and keys of the Python DDL (a test compares the two),
    so the mart views bind from the first build. -#}
{% macro create_monitoring_sources() -%}
    {#- The metric columns shared by the overall and the per-segment performance tables (_METRIC_COLUMNS). -#}
    {%- set metric_columns -%}
        n_scored integer not null,
        n_labelled integer not null,
        label_share double,
        threshold double,
        base_rate double,
        mean_prediction double,
        roc_auc double,
        pr_auc double,
        log_loss double,
        brier double,
        ece double,
        precision double,
        recall double,
        est_roc_auc double,
        est_precision double,
        est_recall double,
        est_roc_auc_error double,
        est_precision_error double,
        est_recall_error double,
        status varchar not null,
        status_reason varchar,
        insufficient_data boolean not null,
        labels_as_of timestamp,
        computed_at timestamptz not null,
    {%- endset %}
    create schema if not exists monitoring;
    create table if not exists monitoring.performance_daily (
        partition_date date not null,
        model_name varchar not null,
        model_version integer not null,
        {{ metric_columns }}
        primary key (partition_date, model_name)
    );
    create table if not exists monitoring.performance_segments_daily (
        partition_date date not null,
        model_name varchar not null,
        model_version integer not null,
        segment_column varchar not null,
        segment_value varchar not null,
        {{ metric_columns }}
        primary key (partition_date, model_name, segment_column, segment_value)
    );
    create table if not exists monitoring.feature_drift_daily (
        partition_date date not null,
        model_name varchar not null,
        model_version integer not null,
        feature varchar not null,
        kind varchar not null,
        n_rows bigint,
        null_share double,
        reference_null_share double,
        unseen_share double,
        psi double,
        js_distance double,
        wasserstein_normed double,
        method varchar not null,
        value double,
        threshold double not null,
        drifted boolean not null,
        insufficient_data boolean not null,
        computed_at timestamptz not null,
        primary key (partition_date, model_name, feature, kind)
    );
    create table if not exists monitoring.dataset_drift_daily (
        partition_date date not null,
        model_name varchar not null,
        model_version integer not null,
        n_rows bigint not null,
        n_features integer not null,
        n_drifted integer not null,
        drifted_share double,
        threshold double not null,
        dataset_drifted boolean not null,
        drifted_features varchar,
        prediction_drifted boolean,
        missing_features varchar,
        insufficient_data boolean not null,
        computed_at timestamptz not null,
        primary key (partition_date, model_name)
    );
    create table if not exists monitoring.checks_daily (
        partition_date date not null,
        model_name varchar not null,
        model_version integer not null,
        kind varchar not null,
        subject varchar not null,
        severity varchar not null,
        firing boolean not null,
        value double,
        threshold double,
        message varchar not null,
        computed_at timestamptz not null,
        primary key (partition_date, model_name, kind, subject)
    );
    create table if not exists monitoring.alerts (
        alert_id varchar not null,
        model_name varchar not null,
        kind varchar not null,
        subject varchar not null,
        severity varchar not null,
        state varchar not null,
        opened_on date not null,
        last_firing_on date not null,
        closed_on date,
        opened_at timestamptz not null,
        closed_at timestamptz,
        days_firing integer not null,
        opened_value double,
        value double,
        threshold double,
        opened_by_version integer not null,
        model_version integer not null,
        message varchar not null,
        primary key (alert_id)
    );
{%- endmacro %}
