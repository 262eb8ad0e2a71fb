with

source as (

    select * from {{ source('raw', 'flights') }}

),

renamed as (

    select
        -- ids
        strftime(make_date(year, month, day), '%Y-%m-%d')
        || '-' || carrier || cast(flight as varchar)
        || '-' || origin as flight_id,
        carrier,
        flight as flight_number,
        tailnum,
        origin,
        dest,
        origin || '-' || dest as route,

        -- schedule (local New York time)
        make_date(year, month, day) as flight_date,
        year,
        month,
        day,
        sched_dep_time,
        hour as sched_dep_hour,
        minute as sched_dep_minute,
        sched_arr_time,
        sched_arr_time // 100 as sched_arr_hour,
        time_hour as sched_dep_hour_utc,
        distance,

        -- outcome: known only from outcome_available_at
        dep_time,
        dep_delay,
        arr_time,
        arr_delay,
        air_time,
        dep_time is null as is_cancelled,
        dep_time is not null and arr_delay is null as is_diverted,
        outcome_available_at,

        -- load metadata
        _load_id,
        _loaded_at

    from source

)

select * from renamed
