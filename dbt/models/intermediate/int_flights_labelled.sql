with

flights as (

    select * from {{ ref('stg_nycflights__flights') }}

),

known as (

    -- A flight's outcome lands at local midnight after its day; before that it has no label.
    select * from flights
    where outcome_available_at <= {{ labels_cutoff() }}

),

labelled as (

    select
        flight_id,
        flight_date,
        carrier,
        origin,
        dest,
        route,
        tailnum,
        case
            when is_cancelled then 'cancelled'
            when is_diverted then 'diverted'
            when arr_delay > 15 then 'late'
            else 'on_time'
        end as outcome,
        -- US DOT on-time rule; a flight that never arrived on time counts as late.
        cast(is_cancelled or is_diverted or arr_delay > 15 as integer) as is_late,
        arr_delay,
        outcome_available_at as label_available_at

    from known

)

select * from labelled
