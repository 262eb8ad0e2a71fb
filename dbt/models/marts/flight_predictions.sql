with

predictions as (

    select * from {{ source('predictions', 'flight_delay') }}

),

flights as (

    select * from {{ ref('stg_nycflights__flights') }}

),

labels as (

    select * from {{ ref('flight_labels') }}

),

joined as (

    select
        -- keys
        predictions.flight_date,
        predictions.flight_id,

        -- the flight, from its schedule
        flights.carrier,
        flights.flight_number,
        flights.origin,
        flights.dest,
        flights.route,
        flights.tailnum,
        flights.sched_dep_time,
        flights.sched_arr_time,

        -- the prediction
        predictions.probability,
        predictions.decision,
        predictions.threshold,
        predictions.model_name,
        predictions.model_version,
        predictions.scored_at,
        predictions.run_id,
        predictions.reason_1_feature,
        predictions.reason_1_contribution,
        predictions.reason_2_feature,
        predictions.reason_2_contribution,
        predictions.reason_3_feature,
        predictions.reason_3_contribution,

        -- the outcome, only once it is known
        labels.flight_id is not null as is_labelled,
        labels.outcome,
        labels.is_late,
        labels.arr_delay,
        labels.label_available_at

    from predictions
    left join flights
        on predictions.flight_id = flights.flight_id
    left join labels
        on predictions.flight_id = labels.flight_id

)

select * from joined
