with

performance as (

    select * from {{ source('monitoring', 'performance_daily') }}

),

dataset_drift as (

    select * from {{ source('monitoring', 'dataset_drift_daily') }}

),

alerts as (

    select * from {{ source('monitoring', 'alerts') }}

),

alerts_active as (

    -- An alert is active on a day from the day it opened until the day before it closed.
    select
        performance.partition_date,
        performance.model_name,
        count(alerts.alert_id) filter (where alerts.severity = 'error') as n_error_alerts,
        count(alerts.alert_id) filter (where alerts.severity = 'warn') as n_warn_alerts
    from performance
    left join alerts
        on
            performance.model_name = alerts.model_name
            and performance.partition_date >= alerts.opened_on
            and (alerts.closed_on is null or performance.partition_date < alerts.closed_on)
    group by performance.partition_date, performance.model_name

)

select
    performance.partition_date,
    performance.model_name,
    performance.model_version,
    performance.n_scored,
    performance.n_labelled,
    performance.status,
    performance.status_reason,
    performance.insufficient_data,
    performance.roc_auc,
    performance.est_roc_auc,
    performance.est_roc_auc_error,
    performance.pr_auc,
    performance.log_loss,
    performance.brier,
    performance.ece,
    performance.precision,
    performance.recall,
    performance.est_precision,
    performance.est_recall,
    performance.base_rate,
    performance.mean_prediction,
    dataset_drift.n_features,
    dataset_drift.n_drifted,
    dataset_drift.drifted_share,
    dataset_drift.threshold as drifted_share_threshold,
    dataset_drift.dataset_drifted,
    dataset_drift.drifted_features,
    dataset_drift.prediction_drifted,
    dataset_drift.missing_features,
    alerts_active.n_error_alerts,
    alerts_active.n_warn_alerts
from performance
left join dataset_drift
    on
        performance.partition_date = dataset_drift.partition_date
        and performance.model_name = dataset_drift.model_name
left join alerts_active
    on
        performance.partition_date = alerts_active.partition_date
        and performance.model_name = alerts_active.model_name
