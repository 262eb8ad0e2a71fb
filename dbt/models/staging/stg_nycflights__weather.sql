with

source as (

    select * from {{ source('raw', 'weather') }}

),

renamed as (

    select
        origin,
        make_date(year, month, day) as observed_date,
        hour as observed_hour,
        time_hour as observed_hour_utc,
        temp,
        dewp,
        humid,
        wind_dir,
        wind_speed,
        wind_gust,
        precip,
        pressure,
        visib,
        _load_id,
        _loaded_at

    from source

),

deduplicated as (

    -- The autumn DST change repeats one local hour; keep its first (earliest UTC) observation.
    select * from renamed
    qualify row_number() over (
        partition by origin, observed_date, observed_hour
        order by observed_hour_utc
    ) = 1

)

select * from deduplicated
