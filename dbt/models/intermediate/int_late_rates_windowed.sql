with

daily as (

    select * from {{ ref('int_flight_outcomes_counted_daily') }}

),

windowed as (

    -- The batch for day D runs the evening of D-1, before D-1's outcomes land at midnight, so a
    -- window for D ends at D-2: 7d = [D-8, D-2], 28d = [D-29, D-2], both inclusive.
    select
        entity_type,
        entity_value,
        flight_date,
        sum(n_flights) over last_7_days as n_flights_7d,
        sum(n_late) over last_7_days as n_late_7d,
        sum(n_flights) over last_28_days as n_flights_28d,
        sum(n_late) over last_28_days as n_late_28d
    from daily
    window
        last_7_days as (
            partition by entity_type, entity_value
            order by flight_date
            range between interval 8 days preceding and interval 2 days preceding
        ),
        last_28_days as (
            partition by entity_type, entity_value
            order by flight_date
            range between interval 29 days preceding and interval 2 days preceding
        )

),

rated as (

    select
        entity_type,
        entity_value,
        flight_date,
        cast(coalesce(n_flights_7d, 0) as integer) as n_flights_7d,
        cast(coalesce(n_late_7d, 0) as integer) as n_late_7d,
        cast(n_late_7d as double) / nullif(n_flights_7d, 0) as late_rate_7d,
        cast(coalesce(n_flights_28d, 0) as integer) as n_flights_28d,
        cast(coalesce(n_late_28d, 0) as integer) as n_late_28d,
        cast(n_late_28d as double) / nullif(n_flights_28d, 0) as late_rate_28d
    from windowed

)

select * from rated
