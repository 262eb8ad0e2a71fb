{#- The predictions table is written by Python (dagster_project/scoring.py, predictions_columns), but the
    marts read it as a source, and in a fresh warehouse dbt runs before the first scoring. This on-run-start
    hook creates it empty, with exactly the columns, types and constraints of the Python DDL (a test compares
    the two), so the mart view binds to the real table from the first build and shows predictions as soon as
    they are written, without another dbt run. Reason-code slots: the three the mart shows (the default of
    scoring.reason_codes); Python adds more if the YAML asks for more. No primary key: its in-memory index
    made replacing a day 20x slower; (flight_date, flight_id) is unique by construction, checked before each
    day commits, and checked again by the asset check predictions_cover_each_scored_day_once. -#}
{% macro create_predictions_source() -%}
    create schema if not exists predictions;
    create table if not exists predictions.flight_delay (
        flight_date date not null,
        flight_id varchar not null,
        model_name varchar not null,
        model_version integer not null,
        scored_at timestamptz not null,
        run_id varchar not null,
        probability double not null,
        decision boolean not null,
        threshold double not null,
        reason_1_feature varchar,
        reason_1_contribution double,
        reason_2_feature varchar,
        reason_2_contribution double,
        reason_3_feature varchar,
        reason_3_contribution double
    );
    {%- for i in range(1, 4) %}
    alter table predictions.flight_delay add column if not exists reason_{{ i }}_feature varchar;
    alter table predictions.flight_delay add column if not exists reason_{{ i }}_contribution double;
    {%- endfor %}
{%- endmacro %}
