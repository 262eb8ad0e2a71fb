with

drift as (

    select * from {{ source('monitoring', 'feature_drift_daily') }}

)

select
    partition_date,
    model_name,
    model_version,
    feature,
    kind,
    method,
    value,
    threshold,
    drifted,
    insufficient_data,
    -- The heatmap's colour: the deciding statistic in units of its threshold (1 = at the threshold), so
    -- statistics of different scales share one colour scale.
    value / nullif(threshold, 0) as value_over_threshold,
    psi,
    js_distance,
    wasserstein_normed,
    null_share,
    reference_null_share,
    unseen_share,
    n_rows
from drift
