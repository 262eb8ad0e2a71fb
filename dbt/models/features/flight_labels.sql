with

labelled as (

    select * from {{ ref('int_flights_labelled') }}

),

final as (

    select
        flight_id,
        flight_date,
        outcome,
        is_late,
        arr_delay,
        label_available_at
    from labelled

)

-- Sorted by the partition column so a day's rows sit together for the daily reads.
select * from final
order by flight_date, flight_id
