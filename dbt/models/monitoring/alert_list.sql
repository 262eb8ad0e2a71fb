with

alerts as (

    select * from {{ source('monitoring', 'alerts') }}

)

select
    alert_id,
    model_name,
    severity,
    kind,
    subject,
    state,
    opened_on,
    last_firing_on,
    closed_on,
    opened_at,
    closed_at,
    days_firing,
    -- Days the alert has been open: to the day it closed (exclusive), or to its last firing day (inclusive).
    case
        when closed_on is null then datediff('day', opened_on, last_firing_on) + 1
        else datediff('day', opened_on, closed_on)
    end as duration_days,
    opened_value,
    value,
    threshold,
    opened_by_version,
    model_version,
    message
from alerts
